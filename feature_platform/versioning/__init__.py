"""Schema versioning: plan and apply feature-view changes safely, with old versions served beside new ones.

- `changes`: diff two descriptions (`derive.description.describe` of a spec, or read back from the registry),
  classify each change additive or breaking;
- `plan`: per view, code against registry, with a migration plan for breaking changes and new versions;
- `registry`: the descriptions the Feast registry holds;
- `workflow`: `plan`, `apply` (refuses breaking changes in place), `remove`, `history`, under the
  deployment-wide registry lock;
- `deprecation`: the warning readers of deprecated views get.
"""
