"""The registry's champion in served checks: a real ``lendgate serve`` (ephemeral port, own
data directory and SQLite store), models registered and promoted over gRPC, checks over
gRPC."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import onnx
import pytest
from onnx import TensorProto, helper

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.features import FEATURE_NAMES
from lendgate.models.train import TrainConfig, train
from lendgate.v1 import models_pb2 as m
from lendgate.v1 import models_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from tests.conftest import ServerProcess, start_server, stop_server
from tests.test_scoring import Person, application

# Training a model (the module fixtures) takes longer than the default 60 s under load.
pytestmark = pytest.mark.timeout(300)

MODEL = "models/application-gbdt"
PARTNER = (("x-lendgate-partner", "bank-a"),)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on a small generated data set (the files `lendgate train` writes)."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "events.jsonl.gz"
    write_events(Generator(GenConfig(seed=31, applicants=1500, days=40)), data, progress=False)
    train(data, root / "model", TrainConfig(rounds=40))
    return root / "model"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    running = start_server(tmp_path / "var")
    yield running
    stop_server(running)


class Client:
    """Sync stubs of one server, checking as partner bank-a."""

    def __init__(self, server: ServerProcess) -> None:
        self.channel = grpc.insecure_channel(server.address)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.models = models_pb2_grpc.ModelRegistryServiceStub(self.channel)
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(self.channel)
        self._n = 0
        self._lock = threading.Lock()

    def check(self) -> scoring_pb2.Report:
        """Check a new, ordinary application (one minute after the previous one)."""
        with self._lock:
            self._n += 1
            n = self._n
        event = application(Person(client=f"c{n}", number=f"{100000 + n}"), minutes=n)
        request = scoring_pb2.CheckApplicationRequest(request_id=f"chk-{n}", application=event)
        response = self.scoring.CheckApplication(request, metadata=PARTNER, timeout=30)
        report: scoring_pb2.Report = response.report
        return report

    def register(self, model_dir: Path, request_id: str, onnx_bytes: bytes | None = None) -> str:
        explainer = b"" if onnx_bytes else (model_dir / "explain.npz").read_bytes()
        request = m.RegisterModelVersionRequest(
            request_id=request_id,
            parent=MODEL,
            onnx=onnx_bytes or (model_dir / "model.onnx").read_bytes(),
            card_json=(model_dir / "card.json").read_text(),
            explainer=explainer,
        )
        return str(self.models.RegisterModelVersion(request).model_version.name)

    def promote(self, version: str) -> None:
        self.models.PromoteModelVersion(m.PromoteModelVersionRequest(name=version))


def nan_on_real_rows() -> bytes:
    """An ONNX model that passes registration (finite on the probe rows: all zeros, all
    NaN, all 1e6) but yields NaN on real applications: log((age - 18) * (age - 100)) is
    undefined for an applicant aged 18 to 100."""
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(FEATURE_NAMES)])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5]),
        helper.make_tensor("lo", TensorProto.FLOAT, [1], [18.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [1], [100.0]),
    ]
    nodes = [
        helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["age"]),
        helper.make_node("IsNaN", ["age"], ["missing"]),
        helper.make_node("Where", ["missing", "zero", "age"], ["a"]),
        helper.make_node("Sub", ["a", "lo"], ["d1"]),
        helper.make_node("Sub", ["a", "hi"], ["d2"]),
        helper.make_node("Mul", ["d1", "d2"], ["prod"]),
        helper.make_node("Log", ["prod"], ["log"]),
        helper.make_node("Mul", ["log", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "half"], ["p"]),
        helper.make_node("Concat", ["p", "p"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "nan-on-real-rows", [x], [y], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_no_champion_no_model_score(served: ServerProcess) -> None:
    client = Client(served)
    with client.channel:
        report = client.check()
    assert not report.HasField("model_risk_score")
    assert list(report.model_explanation) == [] and list(report.warnings) == []
    assert report.provenance.model_name == ""


def test_the_champion_scores_and_explains_served_checks(
    model_dir: Path, served: ServerProcess
) -> None:
    client = Client(served)
    with client.channel:
        version = client.register(model_dir, "r-1")
        before = client.check()  # registered, not promoted: still no score
        client.promote(version)
        report = client.check()
    assert not before.HasField("model_risk_score")
    assert report.HasField("model_risk_score") and 0 <= report.model_risk_score <= 1000
    assert (report.provenance.model_name, report.provenance.model_version) == (
        "application-gbdt",
        "1",
    )
    explained = list(report.model_explanation)
    assert 0 < len(explained) <= 10
    assert {e.feature for e in explained} <= set(FEATURE_NAMES)
    magnitudes = [abs(e.contribution) for e in explained]
    assert magnitudes == sorted(magnitudes, reverse=True) and magnitudes[0] > 0
    # The rule features are the verdict of the same call: this quiet application fired none.
    by_feature = {e.feature: e for e in explained}
    if "rule_points_total" in by_feature:
        assert by_feature["rule_points_total"].value.number_value == report.fraud_score
    assert list(report.warnings) == []


def test_a_model_that_gives_nan_degrades_to_no_score_with_a_warning(
    model_dir: Path, served: ServerProcess
) -> None:
    client = Client(served)
    with client.channel:
        version = client.register(model_dir, "nan-1", onnx_bytes=nan_on_real_rows())
        client.promote(version)
        report = client.check()
    assert not report.HasField("model_risk_score")
    assert list(report.model_explanation) == []
    assert any("NaN" in w and "no model score" in w for w in report.warnings), report.warnings
    assert report.recommended_action == scoring_pb2.RECOMMENDED_ACTION_APPROVE
    assert report.provenance.model_version == ""


def test_promote_and_rollback_swap_live_while_a_client_keeps_checking(
    model_dir: Path, served: ServerProcess
) -> None:
    client = Client(served)
    with client.channel:
        v1 = client.register(model_dir, "swap-1")
        v2 = client.register(model_dir, "swap-2")
        seen: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()
        checked = threading.Semaphore(0)

        def keep_checking() -> None:
            while not stop.is_set():
                try:
                    seen.append(client.check().provenance.model_version)
                except BaseException as exc:  # every failure is one the test reports
                    failures.append(exc)
                    checked.release()
                    return
                checked.release()

        worker = threading.Thread(target=keep_checking)
        worker.start()
        try:
            assert checked.acquire(timeout=60)  # the client is checking before any swap
            for target, expect in ((v1, "1"), (v2, "2")):
                client.promote(target)
                # Once the promote answered, the next check of any client sees it.
                assert client.check().provenance.model_version == expect
            rolled = client.models.RollbackModel(m.RollbackModelRequest(name=MODEL)).model
            assert rolled.champion_version == v1
            assert client.check().provenance.model_version == "1"
            assert checked.acquire(timeout=60)  # and it went on checking across them
        finally:
            stop.set()
            worker.join(timeout=60)
    assert failures == []
    assert len(seen) >= 2
    assert set(seen) <= {"", "1", "2"}


def test_a_shadow_is_scored_but_never_answers(model_dir: Path, served: ServerProcess) -> None:
    client = Client(served)
    with client.channel:
        v1 = client.register(model_dir, "s-1")
        v2 = client.register(model_dir, "s-2")
        client.promote(v1)
        client.models.SetShadowModelVersion(m.SetShadowModelVersionRequest(name=v2, shadow=True))
        report = client.check()
        state = client.models.GetModel(m.GetModelRequest(name=MODEL)).model
    assert report.provenance.model_version == "1" and report.HasField("model_risk_score")
    assert list(state.shadow_versions) == [v2]


def test_the_registry_survives_a_restart_in_the_store(
    model_dir: Path, served: ServerProcess
) -> None:
    client = Client(served)
    with client.channel:
        client.promote(client.register(model_dir, "keep-1"))
    stop_server(served)
    restarted = start_server(served.data_dir)
    try:
        again = Client(restarted)
        with again.channel:
            report = again.check()
        assert report.provenance.model_version == "1" and report.HasField("model_risk_score")
        # The versions are in the database, not in files under the data directory.
        assert not (served.data_dir / "models").exists()
        card = json.loads((model_dir / "card.json").read_text())
        assert card["features"] == list(FEATURE_NAMES)
    finally:
        stop_server(restarted)
        served.process = restarted.process
