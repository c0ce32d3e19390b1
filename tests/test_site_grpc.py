"""The gRPC verification service: the same answers and refusals as the HTTP API, over a real channel."""
from __future__ import annotations

import pytest

grpc = pytest.importorskip("grpc", reason="the gRPC service needs grpcio (the `site` extra)")
pytest.importorskip("fastapi", reason="the site server needs the `site` extra")

from facegate.edge.images import load_rgb  # noqa: E402
from facegate.edge.site import accounts, events, people  # noqa: E402
from facegate.edge.site import verification_pb2 as pb  # noqa: E402
from facegate.edge.site import verification_pb2_grpc as pb_grpc  # noqa: E402
from facegate.edge.site.folder import init_site  # noqa: E402
from facegate.edge.site.grpc_service import start  # noqa: E402
from facegate.edge.site.server import make_service  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, lfw_images):
    site = init_site(tmp_path_factory.mktemp("grpc") / "site", "admin", "correct horse battery")
    service = make_service(site)
    photos = [(p.name, p.read_bytes()) for p in lfw_images["Aaron_Peirsol"][:3]]
    results = people.assess_photos(service.pipeline(), photos)
    pid = people.enrol(site.store, site.sealer, service.binding, "Aaron Peirsol", results)
    server = start(site.store, service, "127.0.0.1", 0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield site, service, pb_grpc.VerificationStub(channel), pid
    channel.close()
    server.stop(0)
    site.close()


def bearer(site, scopes, door=None):
    return (("authorization", "Bearer " + accounts.create_token(site.store, "grpc", scopes, door_id=door)),)


def test_identify_and_verify(served, lfw_images):
    site, service, stub, pid = served
    image = lfw_images["Aaron_Peirsol"][3] if len(lfw_images["Aaron_Peirsol"]) > 3 else lfw_images["Aaron_Peirsol"][0]
    vector = service.pipeline().embed(load_rgb(image)).vector
    trusted = bearer(site, ["verify", "verify:embedding"])
    reply = stub.Identify(pb.IdentifyRequest(probe=pb.Probe(embedding=pb.Embedding(values=vector.tolist()))),
                          metadata=trusted)
    assert reply.decision == "accept" and reply.person == pid and reply.name == "Aaron Peirsol"
    assert not reply.HasField("liveness")
    stranger = service.pipeline().embed(load_rgb(lfw_images["Al_Gore"][0])).vector
    reply = stub.Verify(pb.VerifyRequest(probe=pb.Probe(embedding=pb.Embedding(values=stranger.tolist())),
                                         person=pid), metadata=trusted)
    assert reply.decision == "reject" and reply.score < reply.retry_threshold
    reply = stub.Verify(pb.VerifyRequest(probe=pb.Probe(image=image.read_bytes()), person="Aaron Peirsol"),
                        metadata=bearer(site, ["verify"]))
    assert reply.decision == "accept" and reply.liveness.live and reply.liveness.score >= reply.liveness.threshold


@pytest.mark.parametrize("case,code", [
    ("no token", "UNAUTHENTICATED"), ("door token", "PERMISSION_DENIED"), ("embedding without scope", "PERMISSION_DENIED"),
    ("wrong size", "INVALID_ARGUMENT"), ("unknown person", "NOT_FOUND"), ("not an image", "INVALID_ARGUMENT"),
    ("empty probe", "INVALID_ARGUMENT"),
])
def test_refusals_are_statuses_not_tracebacks(served, case, code):
    site, service, stub, pid = served
    dim = service.binding.dim
    good = pb.Probe(embedding=pb.Embedding(values=[0.1] * dim))
    trusted = bearer(site, ["verify", "verify:embedding"])
    calls = {
        "no token": lambda: stub.Identify(pb.IdentifyRequest(probe=good)),
        "door token": lambda: stub.Identify(pb.IdentifyRequest(probe=good),
                                            metadata=bearer(site, ["door"], events.add_door(site.store, f"d {case}"))),
        "embedding without scope": lambda: stub.Identify(pb.IdentifyRequest(probe=good), metadata=bearer(site, ["verify"])),
        "wrong size": lambda: stub.Identify(pb.IdentifyRequest(probe=pb.Probe(embedding=pb.Embedding(values=[1.0]))),
                                            metadata=trusted),
        "unknown person": lambda: stub.Verify(pb.VerifyRequest(probe=good, person="Nobody"), metadata=trusted),
        "not an image": lambda: stub.Identify(pb.IdentifyRequest(probe=pb.Probe(image=b"\xff\xd8junk")), metadata=trusted),
        "empty probe": lambda: stub.Identify(pb.IdentifyRequest(), metadata=trusted),
    }
    with pytest.raises(grpc.RpcError) as err:
        calls[case]()
    assert err.value.code().name == code
    assert "Traceback" not in err.value.details() and err.value.details()


def test_committed_stubs_match_the_proto(tmp_path):
    """Also where TensorFlow is loaded (the full suite): protoc runs in its own interpreter."""
    pytest.importorskip("grpc_tools", reason="regenerating needs grpcio-tools (dev extra)")
    from facegate.edge.site.grpc_stubs import HERE, generate
    for path in generate(tmp_path):
        stale = f"{path.name} is stale: python -m facegate.edge.site.grpc_stubs"
        assert path.read_bytes() == (HERE / path.name).read_bytes(), stale
