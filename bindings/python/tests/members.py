"""The coffee-shop app's configuration and events, shared by the tests."""

import time

import covey

NOTICE_VERSION = 3
DAY_MS = 86_400_000


def config(data_dir, **overrides):
    """The app's client configuration; `overrides` replace fields."""
    fields = dict(
        data_dir=str(data_dir),
        anchor_path=None,
        population="coffee-shop",
        server_url=None,
        notice_id="coffee-rewards-privacy",
        notice_version=NOTICE_VERSION,
        notice_language="en",
        notice_text="We use your purchases on this phone to suggest offers.",
        controller_name="Coffee Shop Rewards Ltd",
        controller_contact="privacy@coffee.example",
        subject_ref="member-hmac-7f3a",
        jurisdiction="EU-GDPR",
        withdrawal_method="app://privacy-center",
        renewal_window_days=30,
    )
    fields.update(overrides)
    return covey.ClientConfig(**fields)


def purchase(item, category="coffee", days_ago=1, cents=350):
    """A purchase of one `item` in store 12, `days_ago` days ago."""
    return covey.LoyaltyEvent(
        kind=covey.EventKind.PURCHASE,
        item_id=item,
        category=category,
        quantity=1,
        amount_minor=cents,
        currency="EUR",
        store_id="store-12",
        channel=covey.Channel.IN_STORE,
        time_ms=int(time.time() * 1000) - days_ago * DAY_MS,
    )


