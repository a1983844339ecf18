"""The API edge: what stands between HTTP and the services (docs/architecture.md,
"The API edge"). `callers` says who is calling, `permissions` whether the caller may
call the view at all, `parsing` turns input into typed values; the ownership filters
("the rows of this subject this caller may see") live with each subject's selectors
and take a `Caller`; errors render through `compliance.core.errors`.

The package imports only `core`, Django and DRF, so that every app's selectors and
APIs may import it."""
