"""ModelRegistryService through a real ``lendgate serve`` (ephemeral port, own data dir)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import onnx
import pytest
from google.rpc import error_details_pb2, status_pb2
from onnx import TensorProto, helper

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.features import FEATURE_NAMES
from lendgate.models.train import TrainConfig, train
from lendgate.v1 import models_pb2 as m
from lendgate.v1 import models_pb2_grpc
from tests.conftest import ServerProcess, clean_env, start_server, stop_server

# Training a model (the module fixtures) takes longer than the default 60 s under load.
pytestmark = pytest.mark.timeout(300)

MODEL = "models/application-gbdt"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on a small generated data set (the files `lendgate train` writes)."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "events.jsonl.gz"
    write_events(Generator(GenConfig(seed=31, applicants=2000, days=40)), data, progress=False)
    train(data, root / "model", TrainConfig(rounds=40))
    return root / "model"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    running = start_server(tmp_path / "var")
    yield running
    stop_server(running)


def stub_for(
    server: ServerProcess,
) -> tuple[grpc.Channel, models_pb2_grpc.ModelRegistryServiceStub]:
    channel = grpc.insecure_channel(server.address)
    grpc.channel_ready_future(channel).result(timeout=10)
    return channel, models_pb2_grpc.ModelRegistryServiceStub(channel)


def register_request(model_dir: Path, request_id: str) -> m.RegisterModelVersionRequest:
    return m.RegisterModelVersionRequest(
        request_id=request_id,
        parent=MODEL,
        onnx=(model_dir / "model.onnx").read_bytes(),
        card_json=(model_dir / "card.json").read_text(),
        explainer=(model_dir / "explain.npz").read_bytes(),
    )


def violations(err: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and BadRequest violations (field -> description) of a failure."""
    raw = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    reason, fields = "", {}
    for detail in status_pb2.Status.FromString(raw).details:
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields.update({v.field: v.description for v in bad.field_violations})
    return reason, fields


def onnx_model(
    output: str = "probabilities", width: int = len(FEATURE_NAMES), nan: bool = False
) -> bytes:
    """A tiny ONNX graph: the first two input columns (times NaN when ``nan``)."""
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 2])
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [2]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [2], [float("nan") if nan else 0.0] * 2),
    ]
    nodes = [
        helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["two"]),
        helper.make_node("Mul", ["two", "scale"], [output]),
    ]
    graph = helper.make_graph(nodes, "probe", [x], [y], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_register_list_promote_shadow_rollback_and_restart(
    model_dir: Path, served: ServerProcess
) -> None:
    channel, stub = stub_for(served)
    with channel:
        first = stub.RegisterModelVersion(register_request(model_dir, "r-1")).model_version
        assert first.name == f"{MODEL}/versions/1" and first.version == 1
        assert first.feature_count == len(FEATURE_NAMES)
        assert 0.5 < first.holdout_roc_auc <= 1.0 and len(first.onnx_sha256) == 64
        assert not first.champion and not first.shadow and first.create_time.seconds > 0
        assert json.loads(first.card_json)["features"] == list(FEATURE_NAMES)
        # A retry of the same request registers nothing new.
        again = stub.RegisterModelVersion(register_request(model_dir, "r-1")).model_version
        assert again.name == first.name
        second = stub.RegisterModelVersion(register_request(model_dir, "r-2")).model_version
        assert second.version == 2

        listed = stub.ListModelVersions(m.ListModelVersionsRequest(parent=MODEL))
        assert [v.version for v in listed.model_versions] == [1, 2]
        model = stub.GetModel(m.GetModelRequest(name=MODEL)).model
        assert model.champion_version == "" and model.version_count == 2

        v1, v2 = first.name, second.name
        model = stub.PromoteModelVersion(m.PromoteModelVersionRequest(name=v1)).model
        assert model.champion_version == v1
        model = stub.PromoteModelVersion(m.PromoteModelVersionRequest(name=v2)).model
        assert model.champion_version == v2 and list(model.previous_champions) == [v1]
        model = stub.SetShadowModelVersion(
            m.SetShadowModelVersionRequest(name=v1, shadow=True)
        ).model
        assert list(model.shadow_versions) == [v1]
        got = stub.GetModelVersion(m.GetModelVersionRequest(name=v1)).model_version
        assert got.shadow and not got.champion
        with pytest.raises(grpc.RpcError) as exc:
            stub.SetShadowModelVersion(m.SetShadowModelVersionRequest(name=v2, shadow=True))
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        model = stub.SetShadowModelVersion(
            m.SetShadowModelVersionRequest(name=v1, shadow=False)
        ).model
        assert list(model.shadow_versions) == []
        model = stub.RollbackModel(m.RollbackModelRequest(name=MODEL)).model
        assert model.champion_version == v1 and list(model.previous_champions) == []
        with pytest.raises(grpc.RpcError) as exc:
            stub.RollbackModel(m.RollbackModelRequest(name=MODEL))
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The serving state is kept in the data directory: a restarted server has it.
    stop_server(served)
    restarted = start_server(served.data_dir)
    try:
        channel, stub = stub_for(restarted)
        with channel:
            model = stub.GetModel(m.GetModelRequest(name=MODEL)).model
            assert model.champion_version == f"{MODEL}/versions/1" and model.version_count == 2
    finally:
        stop_server(restarted)
        served.process = restarted.process  # the fixture's stop finds it already stopped


@pytest.mark.parametrize(
    ("override", "field", "says"),
    [
        ({"onnx": b"not an onnx file"}, "onnx", "not a loadable ONNX model"),
        ({"onnx": onnx_model(width=3)}, "onnx", "expected [N, "),
        ({"onnx": onnx_model(output="scores")}, "onnx", "no 'probabilities' output"),
        ({"onnx": onnx_model(nan=True)}, "onnx", "NaN"),
        ({"card_json": "{"}, "card_json", "unreadable model card"),
        ({"card_json": json.dumps({"features": ["a"]})}, "card_json", "FEATURE_NAMES"),
        ({"explainer": b"PK junk"}, "explainer", "explain.npz"),
        ({"onnx": b""}, "onnx", "required"),
        ({"request_id": ""}, "request_id", "required"),
        ({"parent": "models/bad name"}, "parent", "model_id"),
        ({"parent": "application-gbdt"}, "parent", "models/{model_id}"),
    ],
)
def test_bad_models_are_refused_with_the_field_and_reason(
    model_dir: Path,
    server: ServerProcess,
    override: dict[str, object],
    field: str,
    says: str,
) -> None:
    channel, stub = stub_for(server)
    with channel:
        with pytest.raises(grpc.RpcError) as exc:
            request = register_request(model_dir, f"bad-{field}")
            for name, value in override.items():
                setattr(request, name, value)
            stub.RegisterModelVersion(request)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        _, fields = violations(exc.value)
        assert says in fields[field], fields
        listed = stub.ListModelVersions(m.ListModelVersionsRequest(parent=MODEL))
        assert list(listed.model_versions) == []  # nothing of a refused model was kept


def test_unknown_models_and_versions_are_not_found(server: ServerProcess) -> None:
    channel, stub = stub_for(server)
    with channel:
        for call, request in [
            (stub.GetModel, m.GetModelRequest(name="models/nobody")),
            (stub.GetModelVersion, m.GetModelVersionRequest(name="models/nobody/versions/1")),
            (
                stub.PromoteModelVersion,
                m.PromoteModelVersionRequest(name="models/nobody/versions/3"),
            ),
            (stub.RollbackModel, m.RollbackModelRequest(name="models/nobody")),
        ]:
            with pytest.raises(grpc.RpcError) as exc:
                call(request)
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND, request
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetModelVersion(m.GetModelVersionRequest(name="models/x/versions/one"))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_only_the_consortium_admins_change_models(model_dir: Path, tmp_path: Path) -> None:
    env = clean_env(LENDGATE_RULE_ADMINS="bureau")
    running = start_server(tmp_path / "var", env=env)
    try:
        channel, stub = stub_for(running)
        with channel:
            partner = (("x-lendgate-partner", "bank-a"),)
            bureau = (("x-lendgate-partner", "bureau"),)
            with pytest.raises(grpc.RpcError) as exc:
                stub.RegisterModelVersion(register_request(model_dir, "p-1"), metadata=partner)
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "rule_admins" in (exc.value.details() or "")
            version = stub.RegisterModelVersion(
                register_request(model_dir, "p-1"), metadata=bureau
            ).model_version
            promote = m.PromoteModelVersionRequest(name=version.name)
            with pytest.raises(grpc.RpcError) as exc:
                stub.PromoteModelVersion(promote, metadata=partner)
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            stub.PromoteModelVersion(promote, metadata=bureau)
            for call, request in [
                (stub.SetShadowModelVersion, m.SetShadowModelVersionRequest(name=version.name)),
                (stub.RollbackModel, m.RollbackModelRequest(name=MODEL)),
            ]:
                with pytest.raises(grpc.RpcError) as exc:
                    call(request, metadata=partner)
                assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # Reads are open to every partner.
            model = stub.GetModel(m.GetModelRequest(name=MODEL), metadata=partner).model
            assert model.champion_version == version.name
    finally:
        stop_server(running)


def test_cli_changes_are_seen_by_the_running_server(model_dir: Path, served: ServerProcess) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "lendgate.cli", "models", "--data-dir", str(served.data_dir)]
        return subprocess.run(
            [*cmd, *args], capture_output=True, text=True, check=False, timeout=50
        )

    assert cli("register", str(model_dir)).returncode == 0
    assert cli("promote", "application-gbdt", "1").returncode == 0
    bad = cli("promote", "application-gbdt", "7")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    channel, stub = stub_for(served)
    with channel:
        version = stub.GetModelVersion(m.GetModelVersionRequest(name=f"{MODEL}/versions/1"))
        assert version.model_version.champion and version.model_version.create_time.seconds > 0
