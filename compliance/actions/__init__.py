"""Actions: the state changes that span several apps, each one transaction.

An app writes only its own tables and imports only the apps below it
(docs/architecture.md, "Which app may import which"). A change that must touch two
apps at once (a withdrawal stops the review items it covers; an ingest schedules
its artefacts' expiry; a new profile gets its consent states; a retention choice
reschedules the profile's artefacts) is an action here, above every app it combines:
it opens the transaction, calls each app's part in the lock order
(docs/architecture.md, "Lock order"), and writes the ledger entry last.

The API, the pages, the demo seed and the tasks call these; nothing below them does.
"""
