"""The member journey through the generated Python bindings of covey-ffi: a real encrypted
store on disk, a host key store written in Python, real consent receipts and audit log."""

import json
import shutil

import covey
import pytest
from hostkeys import BrokenKeyStore, MemoryKeyStore
from members import NOTICE_VERSION, config, purchase



@pytest.fixture
def keys():
    return MemoryKeyStore()


@pytest.fixture
def client(tmp_path, keys):
    return covey.CoveyClient.open(config(tmp_path / "store"), keys)


def stored_count(client, category):
    summary = client.privacy_summary()
    return sum(c.count for c in summary.stored if c.category == category)


def test_open_record_and_reopen_with_the_host_key_store(tmp_path, keys):
    data_dir = tmp_path / "store"
    client = covey.CoveyClient.open(config(data_dir), keys)
    first = client.record_event(purchase("flat-white"))
    ids = client.record_events([purchase("croissant", "bakery"), purchase("latte")])
    assert len(ids) == 2 and first not in ids
    assert stored_count(client, covey.DataCategory.PURCHASES) == 3
    # The data key was wrapped by the Python key store, and nothing readable is on disk.
    assert keys._keys, "the store never asked the host to wrap its key"
    db = next(data_dir.glob("*.sqlite3")).read_bytes()
    assert b"flat-white" not in db and b"croissant" not in db
    del client

    reopened = covey.CoveyClient.open(config(data_dir), keys)
    assert stored_count(reopened, covey.DataCategory.PURCHASES) == 3


def test_another_key_store_cannot_open_the_store(tmp_path, keys):
    data_dir = tmp_path / "store"
    covey.CoveyClient.open(config(data_dir), keys).record_event(purchase("flat-white"))
    with pytest.raises(covey.CoveyError.KeyUnavailable):
        covey.CoveyClient.open(config(data_dir), MemoryKeyStore())


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("keychain daemon crashed"),
        covey.KeyStoreError.Unavailable(reason="device locked"),
    ],
    ids=["arbitrary-exception", "typed-unavailable"],
)
def test_a_raising_key_store_is_a_typed_error_not_a_crash(tmp_path, error):
    with pytest.raises(covey.CoveyError.KeyUnavailable) as caught:
        covey.CoveyClient.open(config(tmp_path / "store"), BrokenKeyStore(error))
    # The host's exception text is not forwarded (it could carry anything).
    assert "keychain daemon" not in str(caught.value)


def test_bad_input_is_invalid_input_and_writes_nothing(client):
    bad = purchase("x" * 500)
    with pytest.raises(covey.CoveyError.InvalidInput) as caught:
        client.record_events([purchase("latte"), bad])
    assert "x" * 50 not in str(caught.value), "the error quoted member data"
    assert stored_count(client, covey.DataCategory.PURCHASES) == 0
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.record_event(purchase("latte", days_ago=-30))  # a month in the future
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION + 1, "onboarding")
    with pytest.raises(covey.CoveyError.InvalidInput):
        covey.CoveyClient.open(config("", population=""), MemoryKeyStore())


def test_grant_withdraw_prompts_and_status(client):
    prompts = client.prompts_needed()
    assert {p.purpose for p in prompts} == {
        covey.Purpose.PERSONALIZATION,
        covey.Purpose.FEDERATED_TRAINING,
        covey.Purpose.ANALYTICS,
    }
    assert all(p.reason == covey.PromptReason.NEVER_ASKED() for p in prompts)

    client.prompt_shown(covey.Purpose.PERSONALIZATION, "onboarding")
    decision = client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "onboarding")
    assert decision.status.state == covey.ConsentState.GIVEN
    assert decision.status.valid_for_processing
    assert decision.receipt.event == covey.ConsentEventKind.GIVEN
    assert decision.receipt.notice_version == NOTICE_VERSION
    client.refuse(covey.Purpose.ANALYTICS, NOTICE_VERSION, "onboarding")
    assert {p.purpose for p in client.prompts_needed()} == {covey.Purpose.FEDERATED_TRAINING}

    withdrawn = client.withdraw(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "privacy_center")
    assert withdrawn.status.state == covey.ConsentState.WITHDRAWN
    assert not client.status(covey.Purpose.PERSONALIZATION).valid_for_processing
    # A withdrawal is respected: the app is not told to ask again.
    assert covey.Purpose.PERSONALIZATION not in {p.purpose for p in client.prompts_needed()}
    states = {s.purpose: s.state for s in client.statuses()}
    assert states[covey.Purpose.ANALYTICS] == covey.ConsentState.REFUSED


def test_receipts_verify_and_forgeries_do_not(client):
    client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "onboarding")
    client.withdraw(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "privacy_center")
    receipts = client.receipts()
    assert [r.event for r in receipts] == [
        covey.ConsentEventKind.GIVEN,
        covey.ConsentEventKind.WITHDRAWN,
    ]
    for receipt in receipts:
        assert client.verify_receipt(receipt.json).receipt_id == receipt.receipt_id
        doc = json.loads(receipt.json)
        assert doc["body"]["signer"]["public_key"] == client.device_public_key()

    forged = json.loads(receipts[1].json)
    forged["body"]["record"]["event"] = "given"  # turn the withdrawal into a consent
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.verify_receipt(json.dumps(forged))
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.verify_receipt("not json")


def test_export_contains_everything_and_erase_shreds_it(client, keys):
    client.record_events([purchase("flat-white"), purchase("croissant", "bakery")])
    client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "onboarding")
    doc = json.loads(client.export_json())
    assert doc["format"] == "covey.device.export"
    items = {e["item_id"] for e in doc["store"]["events"]}
    assert items == {"flat-white", "croissant"}
    assert len(doc["receipts"]) == 1 and doc["audit_log"]["verification"]["violations"] == []

    report = client.erase_all()
    assert report.rows_deleted > 0
    assert keys.destroyed, "erase did not ask the host to destroy its wrapping key"
    assert stored_count(client, covey.DataCategory.PURCHASES) == 0
    assert client.status(covey.Purpose.PERSONALIZATION).state == covey.ConsentState.NOT_ASKED
    assert client.receipts() == []
    # Still usable after erasure.
    client.record_event(purchase("latte"))
    assert stored_count(client, covey.DataCategory.PURCHASES) == 1


def test_audit_log_verifies_and_detects_a_rollback(tmp_path, keys):
    data_dir = tmp_path / "store"
    client = covey.CoveyClient.open(config(data_dir), keys)
    client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "onboarding")
    report = client.verify_audit_log()
    assert report.intact and report.violations == []
    assert report.checkpoint_size == report.log_size > 0
    del client

    snapshot = tmp_path / "snapshot"
    shutil.copytree(data_dir, snapshot)
    client = covey.CoveyClient.open(config(data_dir), keys)
    client.withdraw(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "privacy_center")
    del client

    # Restore the database from before the withdrawal, keeping the newer anchor.
    for f in snapshot.iterdir():
        if f.name != "audit.anchor":
            shutil.copy(f, data_dir / f.name)
    for stale in ("-wal", "-shm"):
        for f in data_dir.glob(f"*{stale}"):
            if not (snapshot / f.name).exists():
                f.unlink()
    restored = covey.CoveyClient.open(config(data_dir), keys)
    report = restored.verify_audit_log()
    assert not report.intact
    assert any(json.loads(v)["violation"] == "rolled_back" for v in report.violations)
