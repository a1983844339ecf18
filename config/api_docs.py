"""What /api/schema/ and /api/docs/ say about each operation, written for the people who
call the API (a drf-spectacular postprocessing hook).

The views' docstrings are notes for the people who change the code; this table is the
text a caller reads. It is kept here, at the edge above every app, so one place holds the
whole API's wording; tests/test_api_docs.py fails on an operation without an entry
and on an entry without an operation.
"""

from typing import Any

# operationId -> (summary, description)
OPERATIONS: dict[str, tuple[str, str]] = {
    # accounts and profiles
    "accounts_create": (
        "Register an account",
        "Registers a person who owns voice profiles. `external_id` is your platform's id "
        "for the account, `jurisdiction` its ISO 3166-1 alpha-2 country code, which "
        "decides the consent defaults, retention policies and transfer rules that apply. "
        "Scope `accounts:write`.",
    ),
    "profiles_create": (
        "Register a voice profile",
        "Registers a voice profile (the person whose voice is recorded) under an account, "
        "given by the account's `external_id`. A child's profile (`is_child: true`) can "
        "never be granted `human_review`. Scope `accounts:write`.",
    ),
    "profiles_retention_read": (
        "Read a profile's retention choice",
        "How long the profile's owner asked for recordings to be kept. Scope "
        "`consents:read`, or the profile's owner signed in.",
    ),
    "profiles_retention_set": (
        "Choose how long recordings are kept",
        "Sets the owner's retention choice: `3_months`, `18_months`, `until_deleted` or "
        "`dont_save`. Each artefact is kept for the shorter of this choice and the "
        "retention policy of the profile's jurisdiction; `dont_save` deletes recordings as "
        "soon as they are processed. The change is recorded in the ledger. Scope "
        "`consents:write`, or the profile's owner signed in.",
    ),
    # consent
    "consents_list": (
        "List a profile's consents",
        "The current consent for every purpose, with where it comes from: `explicit` (the "
        "person decided), `default` (the jurisdiction's default applies) or `none` (not "
        "granted). Scope `consents:read`, or the profile's owner signed in.",
    ),
    "consents_read": (
        "Read one consent",
        "The current consent of the profile for one purpose (`human_review` or "
        "`model_training`). Scope `consents:read`, or the profile's owner signed in.",
    ),
    "consents_set": (
        "Grant or withdraw consent",
        "Records the person's decision for one purpose and answers the new current state. "
        "A withdrawal takes effect in the same transaction: review items of the profile "
        "that are still pending are revoked, and no later sample or clip access reaches "
        "its recordings. `human_review` cannot be granted for a child's profile (422 "
        "`child_profile`). Scope `consents:write`, or the profile's owner signed in.",
    ),
    "consents_history": (
        "Read a consent's history",
        "Every recorded decision for one purpose, newest first: what was decided, through "
        "which channel, under which notice version, by whom and when. Scope "
        "`consents:read`, or the profile's owner signed in.",
    ),
    "consents_receipt": (
        "Get a signed consent receipt",
        "A compact JWS, signed with the ledger's published key, for the latest decision of "
        "one purpose; `python3 -m earshot_verify receipt` checks it offline. Scope "
        "`consents:read`, or the profile's owner signed in.",
    ),
    "profile_evidence": (
        "Get a profile's evidence bundle",
        "Every ledger entry about the profile with the proofs that tie them to a signed "
        "checkpoint, in one JSON document that `python3 -m earshot_verify BUNDLE --key "
        "KEY` checks offline. With `since_size`, also a proof that the ledger only grew "
        "since a checkpoint of that size. Scope `ledger:read`, an officer, or the profile's "
        "owner signed in.",
    ),
    "profile_reviews": (
        "List who reviewed a profile's recordings",
        "The review items drawn from the profile's recordings, newest first: which "
        "recording, the reviewer's location, when it was drawn and heard, and its state. "
        "Scope `ledger:read`, an officer, or the profile's owner signed in.",
    ),
    "consent_defaults_list": (
        "List consent defaults",
        "The consent that applies, per jurisdiction and purpose, to a profile that has "
        "not decided. Without a default, a purpose is not granted. Scope `policies:write`, "
        "or an officer.",
    ),
    "consent_defaults_create": (
        "Set a consent default",
        "Sets the consent that applies in a jurisdiction to profiles that have not decided "
        "for a purpose (an opt-out model where the law allows it). Scope `policies:write`, "
        "or an officer.",
    ),
    "consent_defaults_delete": (
        "Remove a consent default",
        "Removes the default; profiles that have not decided are then not granted the "
        "purpose. Scope `policies:write`, or an officer.",
    ),
    # recordings
    "recordings_create": (
        "Register a recording",
        "Registers one recording of a profile: as JSON, or as multipart/form-data with the "
        "clip in an `audio` file field (WAV, FLAC, MP3, AAC, MP4, Ogg or WebM, "
        "recognised by its bytes), or as a form without the file. `flags` may hold "
        "`sensitive` and `false_wake`, which keep a recording out of human review. Takes "
        "an `Idempotency-Key`. Scope `recordings:write`.",
    ),
    "recordings_read": (
        "Read a recording",
        "The recording's state and artefacts. A purged recording answers as a tombstone "
        "(`purged_at`, `purge_reason`) that holds no personal data. Scope "
        "`recordings:read`, or the profile's owner signed in.",
    ),
    "recordings_register": (
        "Register up to 1,000 recordings",
        "Registers recordings whose audio the platform has already stored under the "
        "ingest prefix (`audio_key`, with its size and SHA-256). Each item answers on its "
        "own, in request order: `created`, `exists` (sent before; nothing changes) or "
        "`error` with a code: `validation_error`, `unknown_profile`, `conflict` (the "
        "external id names another recording), `purged` (a deleted recording is never "
        "brought back), `audio_key_invalid`, `audio_missing`, `audio_mismatch` or "
        "`audio_key_in_use`. Scope `recordings:write`.",
    ),
    # eligibility
    "eligibility_read": (
        "May this recording be used now?",
        "Decides whether one recording may be used for a purpose right now (for "
        "`human_review`, optionally by a reviewer at `reviewer_location`). When it may "
        "not, `reasons` lists every failed condition: `purged`, `retention_expired`, "
        "`child_profile`, `sensitive`, `false_wake`, `no_consent`, `consent_withdrawn`, "
        "`transfer_not_allowed`. Never answered from a cache. Scope `eligibility:read`.",
    ),
    "eligibility_batch": (
        "May these recordings be used now? (up to 10,000)",
        "The same decision as the single check for up to 10,000 recordings in one request, "
        "answered in request order; a recording that does not exist is not eligible. "
        "Takes `application/json` only. Scope `eligibility:read`.",
    ),
    # sampling and review
    "samples_draw": (
        "Draw a sample for review",
        "Draws up to `size` recordings at random from those eligible for the purpose (and "
        "the reviewer's location) and hands each out once, as a review item with a signed "
        "`audio_url` that expires. No profile, account or recording identifier is in the "
        "answer. Scope `samples:draw`.",
    ),
    "review_item_audio": (
        "Listen to a review item",
        "The clip of a review item, for the assigned reviewer (signed in) or whoever holds "
        "the item's signed link (`sig`). Eligibility is checked again at this moment: an "
        "item whose recording is no longer eligible is revoked and answers 410, as do "
        "expired and finished items. Anyone else learns nothing, not even whether the "
        "item exists.",
    ),
    "review_item_annotate": (
        "Annotate a review item",
        "Stores the reviewer's annotation of the clip and closes the item. Same access as "
        "listening: the assigned reviewer or the signed link, and only while the recording "
        "is still eligible.",
    ),
    # transfer rules
    "transfer_rules_list": (
        "List transfer rules",
        "Which reviewer locations may review recordings of which jurisdiction. Without a "
        "rule, only reviewers in the recording's own jurisdiction may. Scope "
        "`policies:write`, or an officer.",
    ),
    "transfer_rules_create": (
        "Allow a reviewer location",
        "Allows reviewers at `reviewer_location` to review recordings of `jurisdiction`. "
        "Scope `policies:write`, or an officer.",
    ),
    "transfer_rules_delete": (
        "Remove a transfer rule",
        "Reviewers at that location may no longer review recordings of that jurisdiction. "
        "Scope `policies:write`, or an officer.",
    ),
    # retention
    "retention_policies_list": (
        "List retention policies",
        "Every policy version, current and retired: jurisdiction (a country, `EU` or "
        "`*`), category, whom it applies to, days kept and when it takes effect. Scope "
        "`policies:write`, or an officer.",
    ),
    "retention_policies_create": (
        "Create a retention policy",
        "How many days artefacts of a category are kept in a jurisdiction, from "
        "`effective_from` (now when not given). The most specific policy wins; the purge "
        "applies it within minutes. Scope `policies:write`, or an officer.",
    ),
    "retention_policies_retire": (
        "Retire a retention policy",
        "Ends the policy version; the next most specific policy applies, or none. Scope "
        "`policies:write`, or an officer.",
    ),
    "retention_policies_preview": (
        "Preview a retention policy",
        "How many artefacts the policy would purge once in effect, without creating it. "
        "Scope `policies:write`, or an officer.",
    ),
    "legal_holds_list": (
        "List legal holds",
        "Every legal hold, placed and released. Scope `holds:write`, or an officer.",
    ),
    "legal_holds_create": (
        "Place a legal hold",
        "Keeps the recordings of an account or a profile (optionally only those recorded "
        "between `from` and `to`) from every deletion, by retention or by request, until "
        "the hold is released. Give `reason` and `case_reference`. Scope `holds:write`, "
        "or an officer.",
    ),
    "legal_holds_release": (
        "Release a legal hold",
        "Releases the hold; what it kept is then purged by its retention as usual. Scope "
        "`holds:write`, or an officer.",
    ),
    "deletion_requests_create": (
        "Request deletion of a profile's recordings",
        "Deletes the profile's recordings, all of them or those recorded between `from` "
        "and `to`. Answers 202 at once; the deletion runs in the background. Recordings "
        "under a legal hold are kept and counted. Takes an `Idempotency-Key`. Scope "
        "`deletions:write`, or the profile's owner signed in.",
    ),
    "deletion_requests_read": (
        "Read a deletion request",
        "The request's status (`received`, `running`, `done`), how many recordings were "
        "deleted and how many a legal hold kept (`blocked_by_hold`), and which webhook "
        "subscribers have confirmed deleting their copies. Scope `deletions:write`, or "
        "the owner signed in.",
    ),
    "deletion_requests_receipt": (
        "Get a signed deletion receipt",
        "A compact JWS, signed with the ledger's published key, for a finished deletion; "
        "409 `deletion_not_done` until the request is done. Scope `deletions:write`, or "
        "the owner signed in.",
    ),
    "profile_purge_receipts": (
        "List a profile's signed purge receipts",
        "One compact JWS per retention purge batch that deleted the profile's recordings, "
        "newest first, at most the newest 100 (older ones stay provable in the evidence "
        "bundle): which recordings (external ids), when, under which rule (the reasons, "
        "e.g. `retention_policy`, `user_choice`). Each binds the batch's ledger `seq` and "
        "`leaf_hash` and carries the profile's part with its audit path to the entry's "
        "`parts_root`; `python3 -m earshot_verify receipt RECEIPT --key KEY` checks it. "
        "Scope `ledger:read`, an officer, or the owner signed in.",
    ),
    # reports
    "reports_retention": (
        "Retention report",
        "Artefacts past their retention that are not yet purged, the purge lag per day, "
        "and the policy gaps (jurisdiction and category pairs without a policy, where "
        "nothing is deleted implicitly). Scope `reports:read`, or an officer.",
    ),
    "reports_consent": (
        "Consent report",
        "Per jurisdiction and purpose, the share of profiles that allow the purpose at the "
        "end of each day (children's profiles never count for `human_review`), and the "
        "review items drawn in the period by reviewer location. Scope `reports:read`, or "
        "an officer.",
    ),
    # ledger: public verification
    "ledger_key": (
        "Get the ledger's verifier key",
        "The current key that signs checkpoints, in signed-note verifier format. Pin it "
        "once; `earshot_verify` checks checkpoints, bundles and receipts against it. No "
        "credentials needed.",
    ),
    "ledger_keys": (
        "List every ledger key",
        "Every public key the ledger has used, current and retired, with its use. No "
        "credentials needed.",
    ),
    "ledger_checkpoint": (
        "Get the latest signed checkpoint",
        "The ledger's size and root hash, signed (C2SP tlog-checkpoint, as text). Keep "
        "one to prove later that the ledger was only appended to. No credentials needed.",
    ),
    "ledger_proof_inclusion": (
        "Prove an entry is in the ledger",
        "An RFC 9162 inclusion proof of entry `seq` in the tree of size `tree_size`. No "
        "credentials needed.",
    ),
    "ledger_proof_consistency": (
        "Prove the ledger only grew",
        "An RFC 9162 consistency proof between tree sizes `from` and `to`: the larger "
        "ledger extends the smaller without rewriting it. No credentials needed.",
    ),
    "ledger_entry": (
        "Read a ledger entry",
        "One entry with its stored canonical bytes (`leaf`) and its hash. Scope "
        "`ledger:read`, or an officer.",
    ),
    # webhooks
    "webhooks_list": (
        "List webhook subscriptions",
        "Your webhook subscriptions and their state. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_create": (
        "Subscribe to events",
        "Registers an HTTPS receiver for events (`consent.changed`, `recording.purged`, "
        "`deletion_request.completed`, ... or `*`). The answer holds the signing `secret` "
        "(`whsec_...`), shown only this once. Set `holds_copies` when the receiver keeps "
        "copies that it must confirm deleting. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_get": (
        "Read a webhook subscription",
        "The subscription and its state. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_update": (
        "Change a webhook subscription",
        "Changes the URL, the events, the description or `holds_copies`; fields not sent "
        "stay as they are. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_delete": (
        "Delete a webhook subscription",
        "No more events are sent to it. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_rotate_secret": (
        "Rotate the signing secret",
        "Answers a new secret (shown once); the old one keeps signing beside it for a "
        "while, so receivers can switch without losing events. Scope `webhooks:write`, "
        "or an officer.",
    ),
    "webhooks_test": (
        "Send a test event",
        "Sends a `webhook.ping` event to the receiver. Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_replay": (
        "Resume a failing subscription",
        "Sends again the events that failed and resumes delivery. Scope `webhooks:write`, "
        "or an officer.",
    ),
    "webhooks_deliveries": (
        "List deliveries",
        "The delivery log of the subscription: each event, its attempts and their answers. "
        "Scope `webhooks:write`, or an officer.",
    ),
    "webhooks_confirm": (
        "Confirm deleting copies",
        "The receiver confirms that it deleted what these events told it of. Sign the "
        "request with the subscription's secret (Standard Webhooks headers "
        "`webhook-id`, `webhook-timestamp`, `webhook-signature` over the raw body), or "
        "call with scope `webhooks:confirm`.",
    ),
}


def describe_operations(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Gives every operation in OPERATIONS its summary and description."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            text = OPERATIONS.get(operation.get("operationId", ""))
            if text is not None:
                operation["summary"], operation["description"] = text
    return result
