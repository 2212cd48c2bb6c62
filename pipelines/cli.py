"""The `fitrec` command: every step of the main job, each runnable alone, and `demo` chaining them."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.bench_serving import bench_serving_cached_cmd, bench_serving_soak_cmd, bench_serving_uncached_cmd
from pipelines.bench_train import bench_train_cmd
from pipelines.config import PipelineSettings

app = typer.Typer(help="fitrec: recommendation and training platform of a fitness app.", no_args_is_help=True)
features_app = typer.Typer(help="Build and inspect the Feast feature store.", no_args_is_help=True)
app.add_typer(features_app, name="features")
admin_app = typer.Typer(help="Administration: service API keys and accounts.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
health_app = typer.Typer(help="Health data: imports, provider sync, daily summaries.", no_args_is_help=True)
app.add_typer(health_app, name="health")
events_app = typer.Typer(help="Validate and export the event log.", no_args_is_help=True)
app.add_typer(events_app, name="events")
bench_app = typer.Typer(help="Benchmarks behind the speed targets; they print figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
model_app = typer.Typer(help="The model registry: versions, promotion, rollback.", no_args_is_help=True)
app.add_typer(model_app, name="model")
step_app = typer.Typer(
    help="One training step alone, reading the run of the step before it (`fitrec train` runs them all).",
    no_args_is_help=True,
)
app.add_typer(step_app, name="step")
check_app = typer.Typer(
    help="On-demand checks that print figures (not part of the test command).", no_args_is_help=True
)
app.add_typer(check_app, name="check")
pipeline_app = typer.Typer(help="Batch pipelines that end: retraining with a promotion gate, …", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
db_app = typer.Typer(help="The platform database's schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
deploy_app = typer.Typer(help="Deploy a registered model version to a hosting service.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
analytics_app = typer.Typer(help="The product dashboard's aggregates of recommendation clicks.", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
console = Console()

if TYPE_CHECKING:
    from sqlalchemy import Engine

UsersOpt = Annotated[int, typer.Option(min=1, help="Simulated users.")]
DaysOpt = Annotated[int, typer.Option(min=1, help="Days of simulated history, ending now.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed: the same seed gives the same events.")]
HostOpt = Annotated[str, typer.Option(help="Interface to bind the API to.")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="Port to serve the API on.")]


@contextmanager
def progress_bar(description: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A bar whose total is learnt on the way: yields (advance(n), set_total(n))."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(description, total=None)
        yield (lambda n: progress.advance(task, n)), (lambda n: progress.update(task, total=n))


@contextmanager
def step_progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A bar over a pipeline's named steps: the callback is progress(step, done, total)."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(step: str, done: int, total: int) -> None:
            progress.update(task, description=f"{description}: {step}", completed=done, total=total)

        yield update


@app.command("seed")
def seed_catalogue_cmd() -> None:
    """Load the exercise catalogue into content items and workout plans."""
    from platform_api.catalogue.service import seed_catalogue
    from platform_api.runtime import open_platform

    settings = PipelineSettings()
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        result = seed_catalogue(session)
    platform.close()
    console.print(f"catalogue: {result.content_items} content items, {result.plans} plans ({result.created} new)")


@app.command()
def simulate(users: UsersOpt = 500, days: DaysOpt = 60, seed: SeedOpt = 7) -> None:
    """Simulate a fitness population and write its events through the ingestion path."""
    from pipelines.simulate import simulate_into_platform
    from platform_api.catalogue.service import list_items
    from platform_api.runtime import open_platform

    settings = PipelineSettings()
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        items = list_items(session)
    if not items:
        raise typer.BadParameter("the catalogue is empty: run `fitrec seed` first")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with progress_bar("simulating and ingesting events") as (advance, set_total):
        report = simulate_into_platform(
            platform.sessions,
            items=items,
            users=users,
            days=days,
            seed=seed,
            end=end,
            progress=advance,
            on_total=set_total,
        )
    platform.close()
    from pipelines.train import record_simulation

    record_simulation(settings.data_dir, users=users, days=days, seed=seed, end=end)
    console.print(
        f"events: {report.events} simulated, {report.stored} stored, {report.duplicates} duplicates "
        f"in {report.seconds:.1f}s"
    )


@features_app.command("build")
def features_build(
    export: Annotated[
        bool, typer.Option(help="Validate new events first (--no-export rebuilds from what is already validated).")
    ] = True,
) -> None:
    """Validate new events, build the feature tables from valid ones, apply Feast definitions, materialize."""
    from pipelines.build_features import build_features

    settings = PipelineSettings()
    with step_progress("features") as progress:
        report = build_features(settings, progress=progress, export=export)
    if report.export is not None:
        e = report.export
        console.print(
            f"validated: received {e.received:,} = stored {e.stored:,} + quarantined {e.quarantined:,} "
            f"+ duplicates {e.duplicates:,}; report: {e.report_path}"
        )
    tables = ", ".join(f"{name} {rows:,}" for name, rows in report.rows_per_table.items())
    console.print(
        f"features ({report.offline_store} offline store): {report.events:,} events → {tables} in {report.seconds:.1f}s"
    )


@features_app.command("freshness")
def features_freshness_cmd() -> None:
    """Age of the newest online value of each feature view (for monitoring)."""
    from features.freshness import feature_freshness
    from pipelines.build_features import feature_store

    store = feature_store(PipelineSettings())
    for view, age in sorted(feature_freshness(store).items()):
        console.print(f"{view}: {'never materialized' if age == float('inf') else f'{age / 3600:.1f} h'}")


@app.command()
def train(
    two_tower: Annotated[
        bool, typer.Option(help="Fit the PyTorch two-tower generator too (the slowest part of training).")
    ] = True,
    carves: Annotated[
        int, typer.Option(min=1, max=5, help="Carves of the training window the ranker learns from.")
    ] = 2,
    holdout_days: Annotated[
        float | None, typer.Option(min=0.1, help="Days held out for evaluation (default: the last 20%).")
    ] = None,
    ray_train: Annotated[
        bool | None,
        typer.Option(help="Fit the PyTorch models through Ray Train (default: only when RAY_ADDRESS is set)."),
    ] = None,
) -> None:
    """Every training step (dataset → generators → ranker → evaluate → register) under one MLflow parent
    run; the new version becomes `challenger` (the registry's first version also champion)."""
    from pipelines.train import run_training
    from training.steps import TrainingConfig

    settings = PipelineSettings()
    config = TrainingConfig(two_tower=two_tower, carves=carves, holdout_days=holdout_days, ray_train=ray_train)
    with step_progress("training") as progress:
        report = run_training(settings, progress=progress, config=config)
    m = report.metrics
    baselines = ", ".join(
        f"{name} {m[f'{name}_ndcg@10']:.3f}" for name in ("popularity", "random", "oracle") if f"{name}_ndcg@10" in m
    )
    console.print(
        f"registered {settings.model_name} version {report.model_version} as {' and '.join(report.aliases)}\n"
        f"runs: train {report.parent_run_id}; "
        + "; ".join(f"{step} {run_id}" for step, run_id in report.run_ids.items()),
        soft_wrap=True,
    )
    console.print(
        f"held-out slates NDCG@10: model {m['ndcg@10']:.3f}; {baselines} ({int(m.get('eval_groups', 0))} requests)"
    )
    if "topk_recall@10" in m:
        others = ", ".join(
            f"{name} {m[f'{name}_topk_recall@10']:.3f}"
            for name in ("popularity", "random", "oracle")
            if f"{name}_topk_recall@10" in m
        )
        console.print(
            f"top-10 over the catalogue: Recall@10 model {m['topk_recall@10']:.3f}; {others}; "
            f"coverage {m.get('topk_coverage', float('nan')):.3f} ({int(m.get('topk_users', 0))} users)"
        )
    if "champion" not in report.aliases:
        console.print(f"serve it with: fitrec model promote {report.model_version}")


RunIdOpt = Annotated[str, typer.Option("--run-id", help="The MLflow run id of the step before this one.")]


def _steps_tracking():  # type: ignore[no-untyped-def]
    from pipelines.train import tracking_of

    return tracking_of(PipelineSettings())


@step_app.command("dataset")
def step_dataset_cmd() -> None:
    """Labelled impressions + point-in-time features, interactions, profiles, catalogue → a dataset run."""
    from pipelines.train import dataset_sources
    from training.steps import build_dataset

    sources, _ = dataset_sources(PipelineSettings())
    with console.status("building the training dataset"):
        run_id = build_dataset(_steps_tracking(), sources)
    console.print(f"dataset run {run_id}")


@step_app.command("generators")
def step_generators_cmd(run_id: RunIdOpt) -> None:
    """Fit the candidate generators per stage from a dataset run → a generators run."""
    from training.steps import fit_generators

    with console.status("fitting candidate generators"):
        new = fit_generators(_steps_tracking(), run_id)
    console.print(f"generators run {new}")


@step_app.command("ranker")
def step_ranker_cmd(run_id: RunIdOpt) -> None:
    """Fit the ranker(s) from a generators run, chosen on validation → a ranker run."""
    from training.steps import fit_ranker

    with console.status("fitting the ranker"):
        new = fit_ranker(_steps_tracking(), run_id)
    console.print(f"ranker run {new}")


@step_app.command("evaluate")
def step_evaluate_cmd(run_id: RunIdOpt) -> None:
    """Evaluate a ranker run on its held-out window (baselines, segments, plots) → an evaluate run."""
    from pipelines.build_features import feature_store
    from pipelines.train import simulation_oracle
    from training.steps import evaluate

    settings = PipelineSettings()
    oracle, _ = simulation_oracle(settings)
    with console.status("evaluating"):
        new, metrics = evaluate(_steps_tracking(), run_id, store=feature_store(settings), oracle=oracle)
    console.print(f"evaluate run {new}: NDCG@10 {metrics['ndcg@10']:.3f}")


@step_app.command("register")
def step_register_cmd(run_id: RunIdOpt) -> None:
    """Package and register an evaluate run's model as `challenger` → a register run and a version."""
    from training.steps import register

    with console.status("packaging and registering"):
        new, version, aliases = register(_steps_tracking(), run_id)
    console.print(f"register run {new}: version {version} ({', '.join(aliases) or 'no alias'})")


@app.command("evaluate")
def evaluate_cmd(
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="A ranker run (evaluated as the training does), or a register run."),
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="A registered version instead of a run.")] = None,
    dataset_run: Annotated[
        str | None, typer.Option(help="Evaluate on this dataset run's held-out window (default: a new dataset).")
    ] = None,
) -> None:
    """Re-evaluate a trained model: held-out slates and top-10 beside popularity, random and the oracle."""
    from pipelines.build_features import feature_store
    from pipelines.train import dataset_sources, simulation_oracle
    from training.registry import MODEL_NAME_IN_RUN
    from training.steps import build_dataset, evaluate, evaluate_model, step_of

    settings = PipelineSettings()
    track = _steps_tracking()
    if (run_id is None) == (version is None):
        raise typer.BadParameter("give --run-id RUN or --version N")
    oracle, _ = simulation_oracle(settings)
    store = feature_store(settings)
    with console.status("evaluating"):
        if run_id is not None and step_of(track, run_id) == "ranker":
            new, metrics = evaluate(track, run_id, store=store, oracle=oracle)
        else:
            if run_id is not None and step_of(track, run_id) != "register":
                raise typer.BadParameter(f"run {run_id} is neither a ranker nor a register run")
            uri = f"runs:/{run_id}/{MODEL_NAME_IN_RUN}" if run_id else f"models:/{settings.model_name}/{version}"
            if dataset_run is None:
                sources, _ = dataset_sources(settings)
                dataset_run = build_dataset(track, sources)
            new, metrics = evaluate_model(track, uri, dataset_run, store=store, oracle=oracle)
    console.print(f"evaluate run {new}")
    if metrics.get("leaky"):
        console.print("[yellow]the model was trained on data after this held-out window's cutoff: optimistic[/]")
    shown = ("ndcg@10", "map@10", "mrr", "topk_ndcg@10", "topk_recall@10", "topk_coverage", "topk_novelty")
    for name in ("", "popularity_", "random_", "oracle_"):
        figures = ", ".join(f"{key} {metrics[name + key]:.3f}" for key in shown if name + key in metrics)
        if figures:
            console.print(f"{name.rstrip('_') or 'model'}: {figures}")


@app.command("tune")
def tune_cmd(
    lightgbm_samples: Annotated[int, typer.Option(min=0, help="LightGBM configurations tried (0: no search).")] = 12,
    torch_samples: Annotated[int, typer.Option(min=0, help="PyTorch ranker configurations tried (0: no search).")] = 8,
    two_tower: Annotated[bool, typer.Option(help="Fit the PyTorch two-tower generator too.")] = True,
) -> None:
    """Train with a Ray Tune (ASHA) search of the rankers' parameters on validation: dataset → generators →
    tune → ranker → evaluate → register (as `challenger`). Local Ray, or the cluster at RAY_ADDRESS."""
    from pipelines.train import run_training
    from training.steps import STEPS, TrainingConfig, TuneOptions

    settings = PipelineSettings()
    options = TuneOptions(lightgbm_samples=lightgbm_samples, torch_samples=torch_samples)
    with step_progress("tuned training") as progress:
        report = run_training(
            settings, progress=progress, config=TrainingConfig(two_tower=two_tower), tune_options=options
        )
    console.print(
        f"registered {settings.model_name} version {report.model_version} as {' and '.join(report.aliases)}\n"
        f"runs: train {report.parent_run_id}; "
        + "; ".join(f"{step} {run_id}" for step, run_id in report.run_ids.items() if step in (*STEPS, "tune")),
        soft_wrap=True,
    )
    console.print(f"held-out slates NDCG@10: model {report.metrics['ndcg@10']:.3f}")


VersionArg = Annotated[int, typer.Argument(min=1, help="The registered version number (see `fitrec model list`).")]


@model_app.command("promote")
def model_promote_cmd(version: VersionArg) -> None:
    """Make VERSION the champion (what serves); the champion it replaces becomes `previous`."""
    from mlflow.exceptions import MlflowException

    from training.registry import promote

    settings = PipelineSettings()
    try:
        done = promote(tracking_uri=settings.tracking_uri, name=settings.model_name, version=version)
    except MlflowException as exc:
        console.print(f"[red]cannot promote[/]: {exc.message}")
        raise typer.Exit(1) from exc
    before = f"; previous: version {done.previous}" if done.previous else ""
    console.print(f"{settings.model_name} champion: version {done.champion}{before}")


@model_app.command("rollback")
def model_rollback_cmd() -> None:
    """Serve the `previous` version again (it becomes champion; the alias `previous` is removed)."""
    from training.registry import rollback

    settings = PipelineSettings()
    try:
        done = rollback(tracking_uri=settings.tracking_uri, name=settings.model_name)
    except ValueError as exc:
        console.print(f"[red]cannot roll back[/]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{settings.model_name} champion: version {done.champion} (was {done.previous})")


@model_app.command("list")
def model_list_cmd() -> None:
    """Registered versions, newest first, with their aliases and key metrics."""
    from rich.table import Table

    from training.registry import list_versions

    settings = PipelineSettings()
    versions = list_versions(tracking_uri=settings.tracking_uri, name=settings.model_name)
    if not versions:
        console.print(f"no version of {settings.model_name} yet: run `fitrec train`")
        return
    shown = {
        "ndcg_at_10": "NDCG@10",
        "popularity_ndcg_at_10": "pop.",
        "topk_recall_at_10": "top-10 recall",
        "topk_utility_vs_oracle": "utility/oracle",
    }
    table = Table(title=settings.model_name)
    for column in ("version", "aliases", "created (UTC)", *shown.values(), "run"):
        table.add_column(column, no_wrap=True)
    for v in versions:
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            *(f"{v.metrics[k]:.3f}" if k in v.metrics else "" for k in shown),
            (v.run_id or "")[:12],
        )
    console.print(table, soft_wrap=True)


def _print_run_tree(tracking_uri: str, run_id: str) -> None:
    from pipelines.run_tree import run_tree, tree_lines

    console.print("MLflow runs:")
    for line in tree_lines(run_tree(tracking_uri, run_id)):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


@pipeline_app.command("retrain")
def pipeline_retrain_cmd(
    tune: Annotated[bool, typer.Option(help="Search the rankers' parameters (Ray Tune) before the ranker step.")] = (
        False
    ),
    margin: Annotated[
        float | None,
        typer.Option(help="How much better the new model must be (default FITREC_PIPELINE_PROMOTE_MARGIN)."),
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for another running retrain to finish (default: exit).")
    ] = 0,
    two_tower: Annotated[bool, typer.Option(help="Fit the PyTorch two-tower generator too.")] = True,
) -> None:
    """Validate new events → materialize → training set → train → evaluate new and champion on the same
    held-out window → promote only if better by the margin and no data check failed. Prints the run tree."""
    from pipelines.retrain import RetrainBusy, run_retrain
    from training.steps import TrainingConfig

    settings = PipelineSettings()
    try:
        with step_progress("retrain") as progress:
            result = run_retrain(
                settings,
                tune=tune,
                margin=margin,
                wait_s=wait,
                config=TrainingConfig(two_tower=two_tower),
                progress=progress,
            )
    except RetrainBusy as exc:
        console.print(f"[yellow]not started[/]: {exc}")
        raise typer.Exit(3) from exc
    metric = result.metric
    for who, version, values in (
        ("new model", result.challenger_version, result.challenger_metrics),
        ("champion", result.champion_before, result.champion_metrics),
    ):
        if metric in values:
            console.print(f"{who} (version {version}): {metric} {values[metric]:.4f}")
    decision = "[green]promoted[/]" if result.promoted else "[yellow]kept the champion[/]"
    console.print(f"{decision}: {result.reason}", soft_wrap=True)
    console.print(f"champion: version {result.champion_before} → {result.champion_after}")
    _print_run_tree(settings.tracking_uri, result.pipeline_run_id)


@pipeline_app.command("show")
def pipeline_show_cmd(run_id: Annotated[str, typer.Argument(help="A pipeline (or any) MLflow run id.")]) -> None:
    """Print an MLflow run and its nested runs as a tree: status, duration, reused or not."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    settings = PipelineSettings()
    try:
        _print_run_tree(settings.tracking_uri, run_id)
    except MlflowException as exc:
        console.print(f"[red]no such run[/]: {run_id}")
        raise typer.Exit(1) from exc
    reason = MlflowClient(tracking_uri=settings.tracking_uri).get_run(run_id).data.tags.get("fitrec.gate.reason")
    if reason:
        console.print(f"gate: {reason}", soft_wrap=True, markup=False)


@pipeline_app.command("precompute")
def pipeline_precompute_cmd(
    active_days: Annotated[float, typer.Option(min=0.01, help="Users with an event this recently are warmed.")] = 30,
    k: Annotated[int, typer.Option(min=1, max=100, help="Slate length warmed (the app's requests' k).")] = 10,
    surface: Annotated[str, typer.Option(help="The surface the slates are for.")] = "home",
    ttl: Annotated[int, typer.Option(min=60, help="Seconds the precomputed slates stay cached.")] = 86_400,
    actors: Annotated[int | None, typer.Option(min=1, help="Ray actors (default: one per CPU of the Ray).")] = None,
) -> None:
    """Rank every active user's top-k with the champion (Ray Data) into the shared serving cache (Redis)."""
    from pipelines.precompute import PrecomputeError, precompute
    from serving.config import ServingSettings

    try:
        with console.status("precomputing slates"):
            report = precompute(
                ServingSettings(), active_days=active_days, k=k, surface=surface, ttl_s=ttl, actors=actors
            )
    except PrecomputeError as exc:
        console.print(f"[red]cannot precompute[/]: {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(
        f"precompute: {report.warmed:,} of {report.users:,} users warmed, {report.failed:,} failed, in "
        f"{report.seconds:.1f}s ({report.users_per_s:,.0f} users/s, {report.actors} actors); models {report.versions}"
    )
    for error, count in report.errors.items():
        console.print(f"  [red]{count:,} users[/]: {error}", soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@deploy_app.command("sagemaker")
def deploy_sagemaker_cmd(
    alias: Annotated[str, typer.Option(help="The registry alias to deploy (champion, challenger, previous).")] = (
        "champion"
    ),
    endpoint: Annotated[str, typer.Option(help="The SageMaker endpoint's name.")] = "fitrec-ranker",
    role: Annotated[
        str | None, typer.Option(help="Execution role ARN of the model (default FITREC_PIPELINE_SAGEMAKER_ROLE).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Serving image URI running `fitrec serve-model` (default FITREC_PIPELINE_SAGEMAKER_IMAGE)."),
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(help="S3 bucket for the model archive (default FITREC_PIPELINE_SAGEMAKER_BUCKET).")
    ] = None,
    instance_type: Annotated[
        str | None, typer.Option(help="Endpoint instance type (default FITREC_PIPELINE_SAGEMAKER_INSTANCE_TYPE).")
    ] = None,
    instance_count: Annotated[int, typer.Option(min=1, help="Endpoint instances.")] = 1,
    region: Annotated[str | None, typer.Option(help="AWS region (default AWS_REGION).")] = None,
) -> None:
    """Create or update the SageMaker model, endpoint configuration and endpoint serving ALIAS's version."""
    from pipelines.deploy_sagemaker import DeployError, deploy_sagemaker

    settings = PipelineSettings()
    try:
        with console.status(f"deploying {settings.model_name}@{alias} to SageMaker"):
            done = deploy_sagemaker(
                settings,
                alias=alias,
                endpoint=endpoint,
                role=role or settings.sagemaker_role,
                image=image or settings.sagemaker_image,
                bucket=bucket or settings.sagemaker_bucket,
                instance_type=instance_type or settings.sagemaker_instance_type,
                instance_count=instance_count,
                region=region or settings.aws_region,
            )
    except DeployError as exc:
        console.print(f"[red]not deployed[/]: {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"endpoint {done.endpoint} {done.action}: {settings.model_name} version {done.version} "
        f"(model {done.model}, config {done.config}, archive {done.model_data})",
        soft_wrap=True,
    )


@app.command()
def serve(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Serve the API (platform + recommendations) with uvicorn."""
    _run_server(host, port, key=None)


@app.command()
def worker() -> None:
    """Run the background work: feature pusher, impression loader, outbox relay, scheduled jobs (one leader
    among all workers does it; settings FITREC_WORKER_*)."""
    import signal
    import threading

    from pipelines.config import WorkerSettings
    from pipelines.jobs import scheduled_jobs
    from pipelines.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = WorkerSettings()
    jobs = scheduled_jobs(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for job, (expression, _) in jobs.items():
        console.print(f"{job:<18} {expression or 'off'}")
    Worker(settings, jobs).run(stop)


def _run_server(host: str, port: int, *, key: str | None) -> None:
    import uvicorn

    _print_where(PipelineSettings(), host, port, key=key or "<fitrec admin create-key --name …>")
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from loopback; the app trusts only
    # FITREC_PLATFORM_TRUSTED_PROXIES (platform_api.auth.proxies).
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, log_level="info", proxy_headers=False)


@app.command("serve-model")
def serve_model(
    host: Annotated[str, typer.Option(help="Interface to bind to (in a SageMaker container: 0.0.0.0).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on (SageMaker's contract: 8080).")] = 8080,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="An MLflow model URI (models:/fitrec-ranker@champion, resolved through MLFLOW_TRACKING_URI or "
            "the data folder's registry) or a model folder; default: SageMaker's SM_MODEL_DIR (/opt/ml/model)."
        ),
    ] = None,
) -> None:
    """Serve the packaged model behind SageMaker's container contract (GET /ping, POST /invocations)."""
    import os

    import uvicorn

    if model_uri:
        # The app is built by uvicorn's factory, in this process: the environment carries the setting.
        os.environ["FITREC_MODEL_URI"] = model_uri
    uvicorn.run(
        "serving.model_server:create_app", factory=True, host=host, port=port, log_level="info", proxy_headers=False
    )


def _create_key(name: str, scopes: list[str]) -> str:
    from pipelines.benchmarks import create_service_key

    return create_service_key(PipelineSettings(), name=name, scopes=scopes)


@admin_app.command("create-key")
def create_key_cmd(
    name: Annotated[str, typer.Option(help="Who the key is for, e.g. 'app backend'.")],
    scope: Annotated[
        list[str], typer.Option(help="A scope to grant (repeat): recommendations:read, events:write, …")
    ] = ["recommendations:read", "feedback:write", "events:write"],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """Create a service API key; its secret is shown once."""
    console.print(_create_key(name, scope))


@admin_app.command("create-user")
def create_user_cmd(
    email: Annotated[str, typer.Option(help="The account's email address (marked verified).")],
    role: Annotated[Literal["user", "trainer", "analyst", "admin"], typer.Option(help="The account's role.")] = "user",
) -> None:
    """Create an account with a verified email, e.g. the first admin. The password is asked for (read from
    stdin when it is not a terminal), never taken as an argument."""
    import sys

    from pydantic import ValidationError

    from platform_api.auth.service import create_user
    from platform_api.errors import ApiError
    from platform_api.runtime import open_platform

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    platform = open_platform(PipelineSettings().platform())
    try:
        with platform.sessions() as session:
            user = create_user(session, email=email, password=password, role=role)
    except ValidationError as exc:  # the messages never repeat the input
        console.print(f"[red]refused[/]: {'; '.join(e['msg'] for e in exc.errors())}")
        raise typer.Exit(1) from exc
    except ApiError as exc:
        console.print(f"[red]refused[/]: {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        platform.close()
    console.print(f"created {user.email} ({user.role}), id {user.id}")


@health_app.command("import-fitbit")
def import_fitbit_cmd(
    folder: Annotated[Path | None, typer.Option(help="Folder of the four Fitbit daily CSV exports.")] = None,
) -> None:
    """Import Fitbit daily exports as they come; every unused row is listed with its line and reason."""
    from platform_api.health.fitbit import FITBIT_DIR, import_fitbit
    from platform_api.runtime import open_platform

    platform = open_platform(PipelineSettings().platform())
    with platform.sessions() as session:
        report = import_fitbit(session, folder=folder or FITBIT_DIR)
    platform.close()
    console.print(f"users: {report.users}, days: {report.days} ({report.changed} new or changed)")
    for problem in report.problems:
        console.print(f"  {problem.file}:{problem.line} {problem.kind}: {problem.reason}")


@health_app.command("sync")
def health_sync_cmd() -> None:
    """Pull every linked Fitbit integration now (as the worker's health_sync job does; settings
    FITREC_PLATFORM_FITBIT_*) and list integrations that are revoked or failing."""
    from sqlalchemy import select

    from platform_api.health.sync import sync_health
    from platform_api.health.tables import HealthIntegration
    from platform_api.runtime import open_platform

    platform = open_platform(PipelineSettings().platform())
    try:
        report = sync_health(platform.sessions, settings=platform.settings)
        with platform.sessions() as session:
            troubled = list(
                session.scalars(
                    select(HealthIntegration)
                    .where(HealthIntegration.sync_error.is_not(None))
                    .order_by(HealthIntegration.user_id)
                )
            )
    finally:
        platform.close()
    console.print(
        f"integrations: {report.integrations} (synced {report.synced}, revoked {report.revoked}, "
        f"failed {report.failed}); days pulled: {report.days}, events ingested: {report.events}, "
        f"days left out: {report.rejected_days}"
    )
    for i in troubled:
        console.print(f"  {i.provider} of user {i.user_id}: {i.status}, {i.sync_failures} failure(s): {i.sync_error}")


@health_app.command("summaries")
def health_summaries_cmd(
    day: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="The day to summarise (UTC); default: yesterday.")
    ] = None,
) -> None:
    """Queue each active user's activity summary of a day in the outbox (once per user and day; the worker's
    relay sends them)."""
    from platform_api.activity_summary import queue_summaries, yesterday
    from platform_api.runtime import open_platform

    platform = open_platform(PipelineSettings().platform())
    try:
        with platform.sessions() as session:
            report = queue_summaries(session, day=day.date() if day else yesterday())
    finally:
        platform.close()
    console.print(
        f"{report.day}: {report.active_users} active user(s), {report.queued} summary email(s) queued "
        f"({report.active_users - report.queued} queued before)"
    )


def _print_where(settings: PipelineSettings, host: str, port: int, key: str, user_id: str = "u-00001") -> None:
    base = f"http://{host}:{port}"
    # soft_wrap: commands stay on one line, so they can be copied whatever the terminal's width.
    for label, text in (
        ("API docs", f"{base}/docs"),
        ("Example", f"curl -s -H 'X-API-Key: {key}' '{base}/v1/users/{user_id}/recommendations?k=10'"),
        ("MLflow UI", f".venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}"),
        ("Data folder", f"{settings.data_dir} (delete it to reset)"),
    ):
        console.print(f"[bold]{label}[/]: {text}", soft_wrap=True)


@app.command()
def demo(
    users: UsersOpt = 500, days: DaysOpt = 60, seed: SeedOpt = 7, host: HostOpt = "127.0.0.1", port: PortOpt = 8000
) -> None:
    """Run the whole main job: seed, simulate, build features, train, serve."""
    seed_catalogue_cmd()
    simulate(users=users, days=days, seed=seed)
    features_build()
    train(two_tower=True, carves=2, holdout_days=None)
    import subprocess
    import sys

    # The worker beside the API, as in production: pushes, impressions, the outbox and the schedule.
    background = subprocess.Popen([sys.executable, "-m", "pipelines", "worker"])
    try:
        _run_server(host, port, key=_create_key("demo", ["recommendations:read", "feedback:write", "events:write"]))
    finally:
        background.terminate()
        background.wait(timeout=30)


@bench_app.command("precompute")
def bench_precompute_cmd(
    users: Annotated[str, typer.Option(help="Comma-separated user counts, one precompute each.")] = "1000,10000,50000",
    actors: Annotated[int | None, typer.Option(min=1, help="Ray actors (default: one per CPU of the Ray).")] = None,
) -> None:
    """Users/s of batch precompute at each count, on the configured trained data folder and shared cache (a
    scratch key prefix, deleted after). Flat users/s across counts means linear scaling."""
    from pipelines.bench_precompute import bench_precompute
    from pipelines.precompute import PrecomputeError
    from serving.config import ServingSettings

    sizes = [int(n) for n in users.split(",") if n.strip()]
    try:
        rounds = bench_precompute(ServingSettings(), sizes=sizes, actors=actors)
    except PrecomputeError as exc:
        console.print(f"[red]cannot precompute[/]: {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print("users    real   warmed  failed  actors  seconds  users/s  load(1m) before→after")
    for r in rounds:
        rep = r.report
        console.print(
            f"{r.users:>6,} {r.real_users:>6,} {rep.warmed:>8,} {rep.failed:>7,} {rep.actors:>7} {rep.seconds:>8.1f} "
            f"{rep.users_per_s:>8,.0f}  {r.load_before:.2f}→{r.load_after:.2f}"
        )
    if len(rounds) > 1 and rounds[0].report.users_per_s:
        console.print(
            f"users/s at {rounds[-1].users:,} over {rounds[0].users:,}: "
            f"{rounds[-1].report.users_per_s / rounds[0].report.users_per_s:.2f} (1.0 = linear)"
        )


@bench_app.command("ingest")
def bench_ingest_cmd(
    users: UsersOpt = 2000,
    days: DaysOpt = 60,
    database_url: Annotated[
        str | None, typer.Option(help="A PostgreSQL server to measure on (a scratch database is made there)")
    ] = None,
) -> None:
    """Events/s through validation and committed inserts (scratch database)."""
    from pipelines.benchmarks import bench_ingestion

    with console.status("ingesting simulated events"):
        figures = bench_ingestion(users=users, days=days, database_url=database_url)
    console.print(
        f"ingestion: {figures['events']:,} events in {figures['seconds']:.1f}s = "
        f"{figures['events_per_s']:,.0f} events/s (target ≥ 5,000)"
    )


@bench_app.command("validate")
def bench_validate_cmd(
    events: Annotated[int, typer.Option(min=1, help="Simulated events to validate and transform.")] = 1_000_000,
    chunk: Annotated[int, typer.Option(min=1, help="Events validated per batch.")] = 200_000,
) -> None:
    """Events/s through Great Expectations validation + transform for simulated events."""
    from pipelines.bench_ingest import bench

    with console.status("validating simulated events"):
        figures = bench(events, chunk=chunk)
    for key, value in figures.items():
        console.print(f"{key}: {value}")


@events_app.command("export")
def events_export_cmd() -> None:
    """Validate new events (Great Expectations) into the offline event store; quarantine the rest with reasons."""
    from pipelines.event_export import export_events

    with console.status("validating and exporting events"):
        report = export_events(PipelineSettings())
    console.print(
        f"{report.backend}: received {report.received:,} = stored {report.stored:,} "
        f"+ quarantined {report.quarantined:,} + duplicates {report.duplicates:,} in {report.seconds:.1f}s; "
        f"report: {report.report_path}"
    )


@events_app.command("load-served")
def events_load_served_cmd() -> None:
    """Turn the slates the API served into recommendation.impression events in the event log."""
    from pipelines.load_served import load_served

    report = load_served(PipelineSettings())
    console.print(
        f"{report.files} files, {report.slates:,} slates: {report.stored:,} impressions stored, "
        f"{report.duplicates:,} already there"
    )
    for problem in report.rejected:
        console.print(f"  rejected: {problem}")


@analytics_app.command("aggregate")
def analytics_aggregate_cmd(
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="Rewrite from this day (UTC) on (default: the days new events changed)."
        ),
    ] = None,
) -> None:
    """Aggregate impressions, clicks and completed workouts into the dashboard's tables (the worker's
    `analytics` job does it hourly)."""
    from pipelines.analytics import AnalyticsBusy, aggregate_analytics

    try:
        with console.status("aggregating impressions, clicks and conversions"):
            report = aggregate_analytics(PipelineSettings(), since=since.date() if since else None)
    except AnalyticsBusy as exc:
        console.print(f"[red]{exc}[/]: try again when it has finished")
        raise typer.Exit(1) from exc
    if report.since is None:
        console.print("nothing to aggregate: no recommendation events yet")
        return
    console.print(
        f"{report.days} days rewritten ({report.since} to {report.until}): {report.impressions:,} impressions, "
        f"{report.clicks:,} clicks, {report.conversions:,} conversions in {report.seconds:.1f} s"
    )


@bench_app.command("features")
def bench_features_cmd(
    users: UsersOpt = 7000,
    days: DaysOpt = 30,
    reads: Annotated[int, typer.Option(min=10, help="Timed online reads per kind.")] = 300,
    redis_url: Annotated[str | None, typer.Option(help="Time the Redis online store instead of SQLite.")] = None,
) -> None:
    """Transform events/s, materialization time and online read p50/p99 (scratch data folder)."""
    import tempfile

    from pipelines.bench_features import bench_features

    with tempfile.TemporaryDirectory(prefix="fitrec-bench-features-") as scratch:
        report = bench_features(
            data_dir=Path(scratch),
            users=users,
            days=days,
            reads=reads,
            redis_url=redis_url,
            progress=lambda msg: console.print(f"… {msg}"),
        )
    for line in report.lines():
        console.print(line)


bench_app.command("train")(bench_train_cmd)
bench_app.command("serving-cached")(bench_serving_cached_cmd)
bench_app.command("serving-uncached")(bench_serving_uncached_cmd)
bench_app.command("serving-soak")(bench_serving_soak_cmd)


@check_app.command("reliability")
def check_reliability_cmd(
    part: Annotated[
        list[str], typer.Option(help="A part to run (repeat): fuzz, faults, security, soak. Default: all.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    soak_seconds: Annotated[float, typer.Option(min=10, help="How long the soak runs.")] = 600,
    fuzz_examples: Annotated[int, typer.Option(min=1, help="Schemathesis examples per operation and caller.")] = 20,
    rate: Annotated[float, typer.Option(min=1, help="Requests/s of the steady load (faults, soak).")] = 40,
    out: Annotated[Path | None, typer.Option(help="Folder for logs and reports (default: a new temp folder).")] = None,
) -> None:
    """Fuzz, faults under load, security checks and a soak on private servers; one table of figures."""
    from rich.table import Table

    from pipelines.reliability.run import PARTS, run_reliability

    unknown = set(part) - set(PARTS)
    if unknown:
        raise typer.BadParameter(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    with console.status("reliability suite") as status:
        report = run_reliability(
            parts=tuple(part) or PARTS,
            soak_s=soak_seconds,
            fuzz_examples=fuzz_examples,
            rate=rate,
            out=out,
            progress=lambda message: status.update(message),
        )
    table = Table(title="fitrec reliability")
    for column in ("part", "check", "figure", "target", ""):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        table.add_row(row.part, row.check, row.figure, row.target, "ok" if row.ok else "MISSED")
    console.print(table)
    for note in report.notes:
        console.print(note, soft_wrap=True)
    console.print(f"logs and reports: {report.out}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def benchmark(
    out: Annotated[Path, typer.Option(help="Folder for metrics.csv/.md, params.json, recs.csv and the MLflow store.")],
    interactions: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="One interactions file, split by --protocol.")
    ] = None,
    train: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A training file (with --test).")
    ] = None,
    test: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="A test file (with --train).")] = None,
    format: Annotated[
        Literal["movielens", "csv"], typer.Option(help="movielens: u.data (tab-separated, no header); csv: a header.")
    ] = "csv",
    user_col: Annotated[str, typer.Option(help="CSV column of the user id.")] = "user_id",
    item_col: Annotated[str, typer.Option(help="CSV column of the item id.")] = "item_id",
    rating_col: Annotated[str, typer.Option(help="CSV column of the rating (may be absent).")] = "rating",
    time_col: Annotated[str, typer.Option(help="CSV column of the time (may be absent: row order).")] = "timestamp",
    protocol: Annotated[str, typer.Option(help="Per-user split: random:0.75, time:0.8 or leave-last-out.")] = (
        "random:0.75"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the split and of every model.")] = 42,
    k: Annotated[int, typer.Option(min=1, help="Cut-off of the metrics and of recs.csv.")] = 10,
) -> None:
    """Benchmark every candidate generator and the two-stage model on an interactions file."""
    from training.benchmark import benchmark_files

    if (interactions is None) == (train is None or test is None) or (train is None) != (test is None):
        raise typer.BadParameter("give --interactions FILE, or both --train FILE and --test FILE (not both ways)")
    with step_progress("benchmark") as progress:
        try:
            run = benchmark_files(
                interactions=interactions,
                train_file=train,
                test_file=test,
                format=format,
                columns={"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col},
                protocol=protocol,
                seed=seed,
                k=k,
                out=out,
                progress=progress,
            )
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
    console.print(run.paths["metrics.md"].read_text(), soft_wrap=True)
    console.print(f"{run.result.seconds['total']:.1f} s; recs of {run.result.best}: {run.paths['recs.csv']}")
    console.print(f"MLflow run {run.run_id}")


def main() -> None:
    app()


@contextmanager
def _database() -> Iterator["Engine"]:
    """The configured platform database; unreachable → a clear message and exit 2, not a traceback."""
    import sqlalchemy as sa

    from platform_api.db import make_engine

    engine = make_engine(PipelineSettings().platform().sqlalchemy_url)
    try:
        yield engine
    except sa.exc.OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        console.print(f"[red]database unreachable[/] ({url}): {str(exc.orig).strip()}", soft_wrap=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade_cmd(revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads") -> None:
    """Apply the migrations up to the revision (default: the newest) to the configured database."""
    from platform_api.migrate import current, pending, upgrade

    with _database() as engine:
        todo = pending(engine)
        upgrade(engine, revision)
        console.print(f"applied {len(todo)} migration(s); the database is at {', '.join(current(engine)) or 'base'}")


@db_app.command("current")
def db_current_cmd() -> None:
    """The revision the configured database is at, and what is not applied yet (exit 1 when behind)."""
    from platform_api.migrate import current, pending

    with _database() as engine:
        at = current(engine)
        todo = pending(engine)
    console.print(
        f"{engine.url.render_as_string(hide_password=True)}: at {', '.join(at) or 'base (empty)'}", soft_wrap=True
    )
    for script in todo:
        console.print(f"  pending: {script.revision} {script.doc}", soft_wrap=True)
    if todo:
        raise typer.Exit(1)
    console.print("up to date")


@db_app.command("history")
def db_history_cmd() -> None:
    """Every migration, newest first; the database's current one marked."""
    from platform_api.migrate import current, history

    with _database() as engine:
        at = set(current(engine))
        scripts = history(engine)
    for script in scripts:
        mark = " (current)" if script.revision in at else ""
        console.print(f"{script.down_revision or '<base>'} -> {script.revision}{mark}: {script.doc}", soft_wrap=True)
