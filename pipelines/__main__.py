"""`python -m pipelines` is the `fitrec` CLI run from this source tree (MLproject entry points use it, so
`mlflow run` on a fresh clone runs the clone's code, not whichever fitrec is installed)."""

from pipelines.cli import main

main()
