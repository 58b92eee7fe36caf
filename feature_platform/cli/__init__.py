"""`feature-platform`: the command line. It only calls the FeaturePlatform facade (`init` only writes files).

`app` parses and dispatches; one module per command group (`runs`: demo, materialize, stream; `reads`: online,
freshness, views; `registry`: plan, apply, remove, history; `serve`; `init_repo`: init, whose files are in
`repo_template`), the parser's types in `arguments`, output in `output`, failures in `failures`. The facade and
the libraries are imported inside the commands, after parsing (`app.main`).
"""

from feature_platform.cli.app import main

__all__ = ["main"]
