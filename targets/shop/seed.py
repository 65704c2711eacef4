"""Schema and deterministic seed data for the shop's PostgreSQL database.

``ensure_seeded`` runs under a PostgreSQL advisory lock, so replicas starting together create
the schema and load the catalog exactly once. The catalog is generated from a fixed seed, so
every run (and every replica) sees the same products, loaded with ``COPY``.

``orders.product_id`` deliberately has no foreign key: the checkout already reads the product,
and an FK check would add an index scan the service cannot see, blurring the comparison of the
service's counters with PostgreSQL's own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg

SEED_LOCK_KEY = 0x5E0D_5140  # any constant shared by all replicas
RANDOM_SEED = 20240601

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS products (
    id          integer PRIMARY KEY,
    name        text    NOT NULL,
    description text    NOT NULL,
    price_cents integer NOT NULL,
    stock       integer NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id           bigserial   PRIMARY KEY,
    product_id   integer     NOT NULL,
    qty          integer     NOT NULL,
    amount_cents bigint      NOT NULL,
    status       text        NOT NULL DEFAULT 'pending',
    created_at   timestamptz NOT NULL DEFAULT now()
);
"""

ADJECTIVES = (
    "classic", "compact", "deluxe", "durable", "elegant", "ergonomic", "foldable", "gentle",
    "handmade", "heavy", "lightweight", "modern", "portable", "premium", "quiet", "rugged",
    "sleek", "smart", "soft", "sturdy", "vintage", "waterproof", "wireless", "cozy",
)  # fmt: skip
MATERIALS = (
    "bamboo", "brass", "canvas", "ceramic", "copper", "cotton", "glass", "granite", "leather",
    "linen", "maple", "marble", "nylon", "oak", "steel", "titanium", "walnut", "wool",
)  # fmt: skip
NOUNS = (
    "backpack", "blanket", "bottle", "bowl", "chair", "clock", "desk", "headphones", "jacket",
    "kettle", "keyboard", "knife", "lamp", "mug", "notebook", "pan", "pillow", "planter",
    "speaker", "stool", "teapot", "tent", "towel", "wallet", "watch",
)  # fmt: skip
FILLER = (
    "a", "and", "built", "by", "care", "daily", "designed", "easy", "every", "for", "from",
    "home", "in", "kitchen", "last", "made", "office", "outdoor", "perfect", "to", "travel",
    "use", "with", "years", "your", "gift", "small", "studio", "season", "finish", "warranty",
)  # fmt: skip
_DESCRIPTION_WORDS = ADJECTIVES + MATERIALS + NOUNS + FILLER * 3


def generate_products(count: int) -> Iterator[tuple[int, str, str, int, int]]:
    """Yield ``count`` deterministic ``(id, name, description, price_cents, stock)`` rows."""
    rng = random.Random(RANDOM_SEED)
    for product_id in range(1, count + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(NOUNS)}"
        words = rng.choices(_DESCRIPTION_WORDS, k=rng.randint(18, 36))
        description = " ".join(words).capitalize() + "."
        yield product_id, name.title(), description, rng.randint(199, 99_999), rng.randint(0, 500)


def ensure_seeded(conn: psycopg.Connection[Any], count: int) -> int:
    """Create the schema and load ``count`` products if the catalog is empty.

    Returns the number of rows loaded (0 when another replica or an earlier run seeded it).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        conn.execute(SCHEMA_SQL)
        if conn.execute("SELECT 1 FROM products LIMIT 1").fetchone() is not None:
            return 0
        with conn.cursor() as cur:
            columns = "id, name, description, price_cents, stock"
            with cur.copy(f"COPY products ({columns}) FROM STDIN") as copy:
                for row in generate_products(count):
                    copy.write_row(row)
    conn.execute("ANALYZE products")
    return count
