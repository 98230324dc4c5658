"""``lendgate train`` and ``lendgate models``: training and the model registry."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lendgate.store.backends import StoreOpenError

if TYPE_CHECKING:
    from lendgate.models.registry import ModelRegistry


_DB_HELP = "the server's store: sqlite:///PATH or postgresql://... (default: under --data-dir)"


@contextlib.contextmanager
def _registry(args: argparse.Namespace) -> Iterator[ModelRegistry]:
    """The server's model registry: in its store (a file-system registry under
    ``--data-dir/models`` from earlier releases is imported first)."""
    from lendgate.models.store_registry import registry_for  # noqa: PLC0415
    from lendgate.store import open_store  # noqa: PLC0415

    url = args.database_url or f"sqlite:///{Path(args.data_dir) / 'lendgate.db'}"
    store = open_store(url)
    try:
        yield registry_for(store, Path(args.data_dir))
    finally:
        store.close()


def add_parser(commands: Any) -> None:
    """Register ``train`` and ``models`` on the ``lendgate`` subcommand parser."""
    p = commands.add_parser("train", help="train a fraud model from a gen-data file (ONNX)")
    p.add_argument("--data", required=True, help="JSON Lines file written by gen-data")
    p.add_argument("--out", required=True, help="output directory of the model")
    p.add_argument("--name", default="application-gbdt", help="model name")
    p.add_argument("--holdout", type=float, default=0.2, help="hold-out share of event time")
    p.add_argument("--rounds", type=int, default=200, help="boosting rounds")
    p.add_argument("--seed", type=int, default=1, help="training seed")
    p.set_defaults(handler=run_train)

    r = commands.add_parser(
        "retrain",
        help="train on a rolling window; register and promote only if it beats the champion",
    )
    r.add_argument("--data", required=True, help="JSON Lines file of events (gen-data format)")
    r.add_argument("--data-dir", default="var", help="data directory (default var)")
    r.add_argument("--database-url", help=_DB_HELP)
    r.add_argument("--name", default="application-gbdt", help="model name")
    r.add_argument("--window-days", type=int, default=90, help="rolling window of training")
    r.add_argument("--holdout", type=float, default=0.2, help="hold-out share of the window")
    r.add_argument("--rounds", type=int, default=200, help="boosting rounds")
    r.add_argument("--min-gain", type=float, default=0.0, help="PR-AUC margin to promote")
    r.add_argument("--schedule", choices=["daily"], help="run every day instead of once")
    r.add_argument("--at", default="03:00", help="with --schedule daily: HH:MM UTC")
    r.set_defaults(handler=run_retrain)

    m = commands.add_parser("models", help="the model registry: list, register, promote, rollback")
    m.add_argument("--data-dir", default="var", help="data directory (default var)")
    m.add_argument("--database-url", help=_DB_HELP)
    actions = m.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="names, versions, champion and shadows")
    reg = actions.add_parser("register", help="validate and add a trained model directory")
    reg.add_argument("dir", help="directory written by lendgate train")
    reg.add_argument("--name", default="application-gbdt", help="model name")
    pro = actions.add_parser("promote", help="make a version the champion (or a shadow)")
    pro.add_argument("name")
    pro.add_argument("version")
    pro.add_argument("--shadow", action="store_true", help="score and log only")
    rb = actions.add_parser("rollback", help="return to the previous champion")
    rb.add_argument("name")
    m.set_defaults(handler=run_models)


def run_train(args: argparse.Namespace) -> int:
    """Train, write the model directory and print the headline metrics."""
    from lendgate.models.train import TrainConfig, TrainingError, train  # noqa: PLC0415

    if not 0.05 <= args.holdout <= 0.5:
        print("lendgate: --holdout must be between 0.05 and 0.5", file=sys.stderr)
        return 2
    cfg = TrainConfig(name=args.name, holdout=args.holdout, rounds=args.rounds, seed=args.seed)
    try:
        card = train(Path(args.data), Path(args.out), cfg)
    except (TrainingError, OSError, ValueError) as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return 2
    m = card["metrics"]
    print(
        f"lendgate: trained {card['name']} into {args.out}: hold-out ROC-AUC "
        f"{m['holdout_roc_auc']:.4f}, PR-AUC {m['holdout_pr_auc']:.4f}",
        file=sys.stderr,
    )
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    """One retraining run (or one a day); prints each decision as one JSON line."""
    import datetime as dt  # noqa: PLC0415
    import json  # noqa: PLC0415

    from lendgate.models.registry import RegistryError  # noqa: PLC0415
    from lendgate.models.retrain import RetrainError, retrain, run_daily  # noqa: PLC0415
    from lendgate.models.train import TrainConfig, TrainingError  # noqa: PLC0415

    if not 0.05 <= args.holdout <= 0.5 or args.window_days < 1:
        print("lendgate: --holdout must be in 0.05..0.5 and --window-days >= 1", file=sys.stderr)
        return 2
    try:
        at = dt.time.fromisoformat(args.at)
    except ValueError:
        print(f"lendgate: --at: expected HH:MM, got {args.at!r}", file=sys.stderr)
        return 2
    cfg = TrainConfig(
        name=args.name, holdout=args.holdout, rounds=args.rounds, window_days=args.window_days
    )

    def once() -> int:
        try:
            with _registry(args) as registry:
                decision = retrain(Path(args.data), registry, cfg, args.min_gain)
        except (
            TrainingError,
            RetrainError,
            RegistryError,
            StoreOpenError,
            OSError,
            ValueError,
        ) as exc:
            print(f"lendgate: retrain: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(decision.as_dict()), flush=True)
        return 0

    if args.schedule is None:
        return once()
    run_daily(once, at)  # failures are printed; the next day runs again
    return 0


def run_models(args: argparse.Namespace) -> int:
    """Registry commands; a running server picks changes up within seconds (it polls)."""
    from lendgate.models.registry import RegistryError  # noqa: PLC0415

    try:
        with _registry(args) as registry:
            return _models_action(args, registry)
    except StoreOpenError as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        where = f"{args.dir}: " if args.action == "register" else ""
        print(f"lendgate: {where}{exc}", file=sys.stderr)
        return 2


def _models_action(args: argparse.Namespace, registry: ModelRegistry) -> int:
    """Run one ``lendgate models`` action on ``registry``."""
    if args.action == "register":
        registered_at = datetime.now(UTC).isoformat()
        version = registry.register(args.name, Path(args.dir), {"registered_at": registered_at})
        print(f"{args.name} version {version} registered")
    elif args.action == "promote":
        state = registry.promote(args.name, args.version, shadow=args.shadow)
        print(f"{args.name}: champion {state.champion}, shadows {state.shadows}")
    elif args.action == "rollback":
        state = registry.rollback(args.name)
        print(f"{args.name}: champion {state.champion} (rolled back)")
    else:
        for name in registry.names():
            state = registry.state(name)
            for files in registry.versions(name):
                role = "champion" if files.version == state.champion else ""
                role = "shadow" if files.version in state.shadows else role
                auc = files.card.get("metrics", {}).get("holdout_pr_auc", float("nan"))
                print(f"{name}\t{files.version}\t{role or '-'}\tPR-AUC {auc:.4f}")
    return 0
