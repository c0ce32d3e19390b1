"""Run one fuzz target under atheris (libFuzzer): `python tests/fuzz/run.py TARGET [libFuzzer options]
[NEW_CORPUS_DIR] tests/fuzz/corpus/TARGET`. See docs/fuzzing.md."""
import logging
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))
with atheris.instrument_imports(include=["facegate"]):
    import targets  # noqa: E402  (instrumented: facegate's own modules only)

    import facegate.edge.cards  # noqa: E402,F401
    import facegate.edge.config  # noqa: E402,F401
    import facegate.edge.door.audit  # noqa: E402,F401
    import facegate.edge.door.config  # noqa: E402,F401
    import facegate.edge.gallery.fileformat  # noqa: E402,F401
    import facegate.edge.gallery.keys  # noqa: E402,F401
    import facegate.edge.gallery.store  # noqa: E402,F401
    import facegate.edge.images  # noqa: E402,F401

if __name__ == "__main__":
    logging.disable(logging.CRITICAL)    # the door's recovery messages, thousands of times a second
    name = sys.argv.pop(1)
    atheris.Setup(sys.argv, targets.TARGETS[name])
    atheris.Fuzz()
