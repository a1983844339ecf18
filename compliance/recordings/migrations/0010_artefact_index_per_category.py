"""One index a category for what the eligibility rule reads of an artefact.

`artefact_rule` (recording, category) INCLUDE (state, expires_at) held every artefact,
and the unique `artefact_one_audio_one_transcript` repeated its keys for the audio and
transcript rows. Now the unique key of each category is the rule's index too
(`artefact_one_audio`, `artefact_one_transcript`: recording INCLUDE (state, expires_at),
one category each), and a plain index on the recording serves the look-ups of all of a
recording's artefacts. As many index entries a row as before, a third fewer bytes, and
the index a decision probes holds half the entries: at 10M recordings it is a level
shallower than `artefact_rule` was (docs/capacity.md, "One index a category").

In one transaction, so no reader or writer sees the table with neither key: writes to
the artefacts wait while the indexes are built (about 20 s at 10M recordings on the
bench's machine). A deployment that cannot pause its writes that long builds the three
new indexes first, under these names, CONCURRENTLY (the statements that `sqlmigrate
recordings 0010` prints, with CONCURRENTLY added), drops the two old ones, and then
fakes this migration (`migrate recordings 0010 --fake`)."""

import compliance.core.constraints
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0009_recording_profile_facts"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="artefact",
            constraint=compliance.core.constraints.CoveringUniqueConstraint(
                condition=models.Q(("category", "audio")),
                fields=("recording",),
                include=("state", "expires_at"),
                name="artefact_one_audio",
            ),
        ),
        migrations.AddConstraint(
            model_name="artefact",
            constraint=compliance.core.constraints.CoveringUniqueConstraint(
                condition=models.Q(("category", "transcript")),
                fields=("recording",),
                include=("state", "expires_at"),
                name="artefact_one_transcript",
            ),
        ),
        migrations.AddIndex(
            model_name="artefact",
            index=models.Index(fields=["recording"], name="artefact_recording"),
        ),
        migrations.RemoveConstraint(
            model_name="artefact",
            name="artefact_one_audio_one_transcript",
        ),
        migrations.RemoveIndex(
            model_name="artefact",
            name="artefact_rule",
        ),
    ]
