"""A realistic night of demo data: products awaiting enrichment, tickets awaiting a label.

Deterministic for a given seed. A few rows are deliberately bad (an empty ticket body, a
product with no description) so every demo shows how bad input is reported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

TICKET_TEMPLATES = {
    "billing": [
        ("Charged twice", "Billing problem: my card was charged twice for the same order. Please refund one charge."),
        ("Refund not received", "I returned the blender three weeks ago and the refund is still not on my billing statement."),
        ("Coupon did not apply", "The 10% coupon was accepted at checkout but my invoice shows the full price. Billing please fix."),
    ],
    "bug": [
        ("App crashes", "There is a bug in the app: it crashes every time I open my wishlist since the last update."),
        ("Checkout button", "Looks like a bug — the checkout button does nothing in Firefox, no error shown."),
        ("Wrong cart total", "The cart shows a total that does not match the items; a bug in the price calculation?"),
    ],
    "feature_request": [
        ("Dark mode", "Feature request: could you add a dark mode to the mobile app? Would love that feature."),
        ("Invoice export", "It would be great to download all invoices as one PDF. Consider this a feature request."),
    ],
    "account": [
        ("Cannot log in", "I cannot log in to my account, the password reset link expires immediately."),
        ("Change e-mail", "How do I change the e-mail address on my account? The settings page will not save it."),
        ("Close account", "Please close my account and delete my data."),
    ],
    "shipping": [
        ("Parcel stuck", "My parcel has been out for delivery for five days. Shipping status never changes."),
        ("Damaged delivery", "The box arrived crushed and the lamp inside is broken. Shipping was clearly rough."),
        ("Wrong address", "I need to change the shipping address of an order I placed an hour ago."),
    ],
    "other": [
        ("Thanks!", "Just wanted to say the new store layout looks great, keep it up."),
        ("Question", "Do you have a physical shop in Lyon?"),
    ],
}

PRODUCT_TEMPLATES = [
    ("outdoor", "Trailhead {n}-Person Dome Tent", "Summit Gear", "A dome tent for outdoor camping with a ripstop polyester fly, two doors and an aluminium pole set. Sleeps {n}."),
    ("kitchen", "Barista Pro Milk Frother {n}", "Casa Brew", "Kitchen milk frother with a stainless steel jug and three foam settings. Colour: silver."),
    ("electronics", "Pulse {n} Wireless Earbuds", "Sonique", "Electronics accessory: wireless earbuds with {n} hours of battery, black ABS plastic case."),
    ("home", "Linen Throw Pillow Cover {n}", "Nordhem", "Home decor pillow cover made of washed linen, natural beige colour, 45 x 45 cm."),
    ("apparel", "Merino Crew Sweater {n}", "Fjell", "Apparel: a navy merino wool crew-neck sweater, regular fit."),
    ("toys", "Stacking Rainbow Blocks ({n} pcs)", "Kinderwerk", "Wooden toys for toddlers: {n} painted beech blocks in rainbow colours."),
    ("beauty", "Rosehip Face Oil {n} ml", "Flora & Co", "Beauty serum: cold-pressed rosehip oil in an amber glass bottle."),
    ("office", "Ergo Desk Lamp {n}", "Lumen", "Office desk lamp with an adjustable aluminium arm, matte white, {n} brightness levels."),
]


@dataclass
class DemoCounts:
    products: int
    tickets: int
    requests: int
    bad_rows: int


def generate(conn: psycopg.Connection, *, tickets: int = 2000, products: int = 1000, seed: int = 7,
             now: datetime | None = None, bad_every: int = 400, enqueue: bool = True) -> DemoCounts:
    """Insert demo source rows with COPY and queue one request for each."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    base_ticket = _next_id(conn, "app.support_tickets", "ticket_id")
    base_product = _next_id(conn, "app.products", "product_id")
    bad = 0
    with conn.cursor() as cur:
        with cur.copy("COPY app.support_tickets (ticket_id, customer_email, customer_tier, subject, body, created_at) FROM STDIN") as copy:
            for i in range(tickets):
                label = rng.choice(list(TICKET_TEMPLATES))
                subject, body = rng.choice(TICKET_TEMPLATES[label])
                if bad_every and i % bad_every == bad_every - 1:
                    body, bad = "", bad + 1
                created = now - timedelta(seconds=rng.randint(0, 86_399))
                tier = rng.choices(["free", "standard", "enterprise"], weights=[5, 4, 1])[0]
                copy.write_row((base_ticket + i, f"customer{base_ticket + i}@example.com", tier, subject, body, created))
        with cur.copy("COPY app.products (product_id, sku, title, brand, description, price_cents, created_at, updated_at) FROM STDIN") as copy:
            for i in range(products):
                _, title, brand, description = rng.choice(PRODUCT_TEMPLATES)
                n = rng.randint(2, 12)
                if bad_every and i % bad_every == bad_every - 1:
                    description, bad = None, bad + 1
                else:
                    description = description.format(n=n)
                changed = now - timedelta(seconds=rng.randint(0, 86_399))
                pid = base_product + i
                copy.write_row((pid, f"SKU-{pid:07d}", title.format(n=n), brand, description,
                                rng.randint(500, 25_000), changed, changed))
        requests = 0
        if enqueue:
            cur.execute(
                "INSERT INTO app.llm_requests (workload, source_key) "
                "SELECT 'ticket_classification', ticket_id::text FROM app.support_tickets WHERE ticket_id >= %s "
                "ORDER BY support_tickets.ticket_id", (base_ticket,))
            requests += cur.rowcount
            cur.execute(
                "INSERT INTO app.llm_requests (workload, source_key) "
                "SELECT 'product_enrichment', product_id::text FROM app.products WHERE product_id >= %s "
                "ORDER BY products.product_id", (base_product,))
            requests += cur.rowcount
    conn.commit()
    return DemoCounts(products=products, tickets=tickets, requests=requests, bad_rows=bad)


def _next_id(conn: psycopg.Connection, table: str, column: str) -> int:
    query = sql.SQL("SELECT coalesce(max({}), 0) + 1 FROM {}").format(
        sql.Identifier(column), sql.Identifier(*table.split(".")))
    return conn.execute(query).fetchone()[0]
