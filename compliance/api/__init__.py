"""The API of the operations that span apps: the HTTP views that call an action
(`compliance/actions/`) or read more than one app, on the top floor beside the pages
(docs/architecture.md, "The API edge among the floors").

A view that reads and writes only its own app stays in that app's `apis.py`; a module
moved here whole when one of its views needed to stand above the actions. Only the URL
configuration imports this package (the import-linter contract "edge")."""
