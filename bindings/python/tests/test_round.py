"""Recommendations and round participation through the Python bindings, against a real
covey-server on loopback: the app installs the server's model, recommends (global ranking
without consent, personalized with it), explains, and three members complete a secure
aggregation round, one of them over a host transport written in Python."""

import threading
import time
import urllib.error
import urllib.request

import covey
import pytest
from hostkeys import MemoryKeyStore
from members import NOTICE_VERSION, config, purchase
from server import ITEMS, Server

POPULATION = "coffee-shop"
IDEAL = covey.DeviceConditions(charging=True, unmetered=True, idle=True, battery_percent=90)


class UrllibTransport(covey.Transport):
    """The host's HTTP stack (here urllib), as a phone app would pass OkHttp or URLSession."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.requests = 0

    def send(self, request):
        self.requests += 1
        post = request.method == covey.HttpMethod.POST
        http = urllib.request.Request(
            self.base_url + request.path,
            data=bytes(request.body) if post else None,
            method="POST" if post else "GET",
        )
        if request.bearer is not None:
            http.add_header("Authorization", f"Bearer {request.bearer}")
        if request.content_type is not None:
            http.add_header("Content-Type", request.content_type)
        try:
            with urllib.request.urlopen(http, timeout=30) as r:
                status, body, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, body, headers = e.code, e.read(), e.headers
        except urllib.error.URLError as e:
            raise covey.TransportError.Unreachable(reason=str(e.reason))
        retry = headers.get("Retry-After")
        return covey.TransportResponse(
            status=status,
            body=body,
            retry_after_ms=int(float(retry) * 1000) if retry else None,
        )


class FailingTransport(covey.Transport):
    def send(self, request):
        raise OSError("socket exploded")


def until_published(refresh, seconds=30):
    """Calls `refresh` until it installs a new model version, which it returns."""
    deadline = time.monotonic() + seconds
    while (version := refresh()) is None:
        assert time.monotonic() < deadline, "no new model version was published"
        time.sleep(0.2)
    return version


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"), POPULATION)
    yield s
    s.stop()


def member(tmp_path, name, server, history):
    client = covey.CoveyClient.open(
        config(tmp_path / name, population=POPULATION, server_url=server.url, subject_ref=name),
        MemoryKeyStore(),
    )
    client.install_model(server.model_bytes)
    client.record_events([purchase(item, days_ago=d + 1) for d, item in enumerate(history)])
    return client


def test_recommend_global_without_consent_personalized_with_it(tmp_path, server):
    client = covey.CoveyClient.open(config(tmp_path / "m"), MemoryKeyStore())
    with pytest.raises(covey.CoveyError.ModelUnavailable):
        client.recommend(5)
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.install_model(b"not a model")
    assert client.install_model(server.model_bytes) == 0
    assert client.model_version() == 0
    history = ITEMS[:6]
    client.record_events([purchase(item, days_ago=d + 1) for d, item in enumerate(history)])

    fallback = client.recommend(5)
    assert not fallback.personalized
    assert fallback.fallback == covey.FallbackReason.NO_CONSENT()
    assert len(fallback.items) == 5
    no_data = client.explain(fallback.items[0].item_id)
    assert not no_data.personal_data_used and no_data.because == []

    client.grant(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "onboarding")
    personal = client.recommend(5)
    assert personal.personalized and personal.fallback is None
    assert [i.item_id for i in personal.items] != [i.item_id for i in fallback.items]
    explanations = [client.explain(i.item_id) for i in personal.items]
    because = [e for e in explanations if e.personal_data_used]
    assert because, "no personalized offer was explained by the member's history"
    for e in because:
        assert e.text.startswith("Because you bought")
        assert {c.item_id for c in e.because} <= set(history)
        assert all(c.kind == covey.EventKind.PURCHASE and 0 < c.share <= 1 for c in e.because)

    filtered = client.recommend_filtered(
        10, covey.RecommendFilter(exclude_bought=True, exclude_items=[], category="cat-2")
    )
    assert filtered.items and not {i.item_id for i in filtered.items} & set(history)
    with pytest.raises(covey.CoveyError.InvalidInput):
        client.explain("not-in-the-catalog")

    client.withdraw(covey.Purpose.PERSONALIZATION, NOTICE_VERSION, "privacy_center")
    after = client.recommend(5)
    assert not after.personalized and after.fallback == covey.FallbackReason.NO_CONSENT()


def test_ineligible_and_failing_transports_are_typed_errors(tmp_path, server):
    client = member(tmp_path, "solo", server, ITEMS[:4])
    cancel = covey.CancelHandle()
    # No federated-training consent: nothing is sent.
    with pytest.raises(covey.CoveyError.NotEligible):
        client.participate(IDEAL, cancel)
    client.grant(covey.Purpose.FEDERATED_TRAINING, NOTICE_VERSION, "onboarding")
    on_battery = covey.DeviceConditions(
        charging=False, unmetered=True, idle=True, battery_percent=90
    )
    with pytest.raises(covey.CoveyError.NotEligible):
        client.participate(on_battery, cancel)
    with pytest.raises(covey.CoveyError.Network):
        client.participate_with_transport(FailingTransport(), IDEAL, cancel)
    offline = covey.CoveyClient.open(config(tmp_path / "offline"), MemoryKeyStore())
    with pytest.raises(covey.CoveyError.InvalidInput):
        offline.participate(IDEAL, cancel)  # no server_url configured


def test_three_members_complete_a_round(tmp_path, server):
    histories = [ITEMS[0:5], ITEMS[3:8], ITEMS[6:11]]
    clients = [member(tmp_path, f"m{i}", server, h) for i, h in enumerate(histories)]
    for c in clients:
        c.grant(covey.Purpose.FEDERATED_TRAINING, NOTICE_VERSION, "onboarding")
    host_transport = UrllibTransport(server.url)
    results = [None] * 3

    def run(i):
        cancel = covey.CancelHandle()
        try:
            if i == 0:
                results[i] = clients[i].participate_with_transport(host_transport, IDEAL, cancel)
            else:
                results[i] = clients[i].participate(IDEAL, cancel)
        except covey.CoveyError as e:  # reported below, with the others' results
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert all(isinstance(r, covey.ParticipationOutcome) for r in results), results
    assert len({r.round for r in results}) == 1
    assert host_transport.requests > 0
    for client, outcome in zip(clients, results):
        assert outcome.upload_bytes > 0 and outcome.bytes_sent >= outcome.upload_bytes
        assert outcome.epsilon > 0 and 0 < outcome.delta < 1
        assert outcome.examples >= 3
        assert outcome.total_ms >= outcome.train_ms
        summary = client.privacy_summary()
        assert summary.uploads == 1
        assert summary.cumulative_epsilon == pytest.approx(outcome.epsilon)
        assert summary.last_upload_ms is not None
        assert client.verify_audit_log().intact
    # The server publishes model version 1 once it has aggregated the round; the members
    # fetch it for their offers.
    assert until_published(lambda: clients[0].refresh_model_with_transport(host_transport)) == 1
    assert clients[1].refresh_model() == 1
    assert clients[1].refresh_model() is None  # already current
    assert clients[1].model_version() == 1
    assert clients[1].recommend(3).items


def test_refresh_model_needs_training_consent_and_sends_nothing_without_it(tmp_path, server):
    client = member(tmp_path, "no-consent", server, ITEMS[:4])
    transport = UrllibTransport(server.url)
    with pytest.raises(covey.CoveyError.ConsentRequired):
        client.refresh_model_with_transport(transport)
    with pytest.raises(covey.CoveyError.NotEligible):
        client.participate_with_transport(transport, IDEAL, covey.CancelHandle())
    assert transport.requests == 0


def test_cancel_stops_a_waiting_participation(tmp_path, server):
    client = member(tmp_path, "waiting", server, ITEMS[:4])
    client.grant(covey.Purpose.FEDERATED_TRAINING, NOTICE_VERSION, "onboarding")
    deadline = time.monotonic() + 30
    while True:
        cancel = covey.CancelHandle()
        timer = threading.Timer(1.5, cancel.cancel)
        timer.start()
        try:
            # Alone, the cohort of 3 never fills: the device waits until cancelled.
            client.participate(IDEAL, cancel)
        except covey.CoveyError.Cancelled:
            break
        except covey.CoveyError.NotEligible:
            # The other tests' round is still closing: no round open for check-in yet.
            assert time.monotonic() < deadline, "no round opened within 30 s"
            time.sleep(0.3)
        else:
            pytest.fail("a round completed with one member")
        finally:
            timer.cancel()
        assert time.monotonic() < deadline
    assert cancel.is_cancelled()
