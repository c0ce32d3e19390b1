"""The local encrypted gallery: one AES-256-GCM file per door, atomic and locked, plus matching.

Nothing biometric or personal is ever on disk in plaintext: names, ids, templates and crops all
live inside the encrypted body. The plaintext header holds only format, key-derivation parameters,
a key check value and the embedding model binding, and it is authenticated.
"""
from facegate.edge.gallery.keys import KeySource
from facegate.edge.gallery.matching import Decision, Matcher, MatchResult, gallery_thresholds, thresholds_from_card
from facegate.edge.gallery.records import Gallery, ModelBinding, Person
from facegate.edge.gallery.store import GalleryStore

__all__ = ["Decision", "Gallery", "GalleryStore", "KeySource", "Matcher", "MatchResult", "ModelBinding", "Person",
           "gallery_thresholds", "thresholds_from_card"]
