"""The resolved config of every job the protocol scripts launch, against the fixture table
tests/protocol_configs.tsv: each trainer x protocol x dataset x train/test, as the sweeps and
scripts/common.sh build them, resolved by train.py's config assembly."""
import pytest

from tests.protocol_jobs import COLUMNS, read_fixture, resolved_rows


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return resolved_rows(str(tmp_path_factory.mktemp("jobs")))


def test_every_scripted_job_resolves_to_the_fixture(rows):
    fixture = {(r["job"], r["mode"]): r for r in read_fixture()}
    resolved = {(r["job"], r["mode"]): r for r in rows}
    assert sorted(resolved) == sorted(fixture), "the scripts launch other jobs than the fixture lists"
    differences = [
        f"{job} ({mode}) {column}: fixture {fixture[job, mode][column]}, now {row[column]}"
        for (job, mode), row in sorted(resolved.items()) for column in COLUMNS
        if row[column] != fixture[job, mode][column]
    ]
    assert not differences, "\n".join(differences[:20])
