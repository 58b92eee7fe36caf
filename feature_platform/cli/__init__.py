"""`feature-platform`: the command line. It only calls the FeaturePlatform facade (`init` only writes files).

`app` parses and dispatches; one module per command group (`runs`: demo, materialize, stream; `reads`: online,
freshness, views; `registry`: plan, apply, remove, history; `serve`; `init_repo`: init, whose files are in
`repo_template`), the parser's types in `arguments`, output in `output`, failures in `failures`, how the process
ends in `process_exit`. The facade and the libraries are imported inside the commands, after parsing (`app.main`).
"""

from feature_platform.cli.app import main
from feature_platform.cli.process_exit import run


def entry_point() -> None:
    """The `feature-platform` console script: `main` with the command line, ended by `process_exit.run`."""
    run(main)


__all__ = ["entry_point", "main"]
