"""Price books: the shipped ones load, user books and overrides work, every bad case is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from artifact_factory import SIMPLE_PRICES, write_book

from harness.cost import list_price_books, load_price_book
from harness.cost.books import ENV_VAR
from harness.errors import InputError, PriceBookError

SHIPPED = {
    "opencost-default",
    "aws-fargate-us-east-1",
    "aws-fargate-us-east-1-arm",
    "aws-lambda-us-east-1",
    "aws-lambda-us-east-1-arm",
    "gcp-cloud-run",
}


def test_shipped_books_load_and_cite_every_price() -> None:
    infos = {i.name: i for i in list_price_books()}
    assert set(infos) >= SHIPPED
    for name in SHIPPED:
        assert infos[name].problem is None, infos[name].problem
        book = load_price_book(name)
        assert book.currency == "USD"
        for price in book.prices.values():
            assert price.source.startswith("https://")
            assert "retrieved" in price.source


def test_default_book_prices_per_second() -> None:
    book = load_price_book(None)
    assert book.name == "opencost-default"
    vcpu = book.get("vcpu_hour")
    assert vcpu is not None
    assert vcpu.per_base_unit == pytest.approx(0.031611 / 3600)
    live = book.live_prices()
    assert live.gib_second == pytest.approx(0.004237 / 3600)


def test_lambda_extends_fargate_and_has_no_vcpu_second() -> None:
    book = load_price_book("aws-lambda-us-east-1")
    request = book.get("request")
    assert request is not None and request.per_base_unit == pytest.approx(0.20 / 1e6)
    assert book.get("vcpu_second") is None  # Lambda bills memory x duration only
    assert book.get("vcpu_hour") == load_price_book("aws-fargate-us-east-1").get("vcpu_hour")
    assert book.serverless_granularity_ms == 1


def test_cloud_run_carries_both_billing_configurations() -> None:
    book = load_price_book("gcp-cloud-run")
    hour, second = book.get("vcpu_hour"), book.get("vcpu_second")
    assert hour is not None and second is not None
    assert hour.per_base_unit == pytest.approx(0.000018)
    assert second.per_base_unit == pytest.approx(0.000024)
    assert book.serverless_granularity_ms == 100


def test_gib_priced_logs_convert_to_gb() -> None:
    log = load_price_book("opencost-default").get("log_ingest_gb")
    assert log is not None and log.per_base_unit == pytest.approx(0.5 * 1e9 / 2**30)


def test_unknown_book_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(PriceBookError) as err:
        load_price_book("aws-fargate-us-east")
    text = str(err.value)
    assert "unknown price book 'aws-fargate-us-east'" in text
    assert "did you mean 'aws-fargate-us-east-1'" in text
    assert "gcp-cloud-run" in text


def test_user_book_by_path_and_by_name_from_env(tmp_path: Path, monkeypatch: Any) -> None:
    path = write_book(tmp_path / "books", "mine", SIMPLE_PRICES)
    assert load_price_book(str(path)).name == "mine"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "books"))
    assert load_price_book("mine").get("egress_gb") is not None
    listed = {i.name: i for i in list_price_books()}
    assert not listed["mine"].builtin and listed["opencost-default"].builtin


def test_env_dir_that_does_not_exist(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(PriceBookError, match="is not a directory"):
        load_price_book("opencost-default")


def _problems(tmp_path: Path, **book: Any) -> str:
    path = write_book(tmp_path, "bad", **book)
    with pytest.raises(PriceBookError) as err:
        load_price_book(str(path))
    assert "bad.yaml" in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        (
            {"vcpu_hour": (-1.0, "USD/vCPU-hour")},
            "prices.vcpu_hour.unit_price: must not be negative",
        ),
        (
            {"vcpu_hour": (1.0, "USD/vCPU-minute")},
            "prices.vcpu_hour.unit: 'USD/vCPU-minute' is not",
        ),
        ({"vcpu_hour": (1.0, "USD/GiB-hour")}, "use USD/vCPU-hour"),
        ({"egress_gb": (1.0, "EUR/GB")}, "currency 'EUR' differs from the book's 'USD'"),
        ({"gpu_hour": (1.0, "USD/GPU-hour")}, "prices.gpu_hour: unknown price key"),
        ({"external:bad vendor": (1.0, "USD/call")}, "unknown price key"),
        ({"request": ("cheap", "USD/request")}, "prices.request.unit_price: must be a number"),
    ],
)
def test_bad_prices_are_named(tmp_path: Path, prices: dict[str, Any], expected: str) -> None:
    assert expected in _problems(tmp_path, prices=prices)


def test_bad_header_fields(tmp_path: Path) -> None:
    text = _problems(
        tmp_path,
        prices=SIMPLE_PRICES,
        currency="XYZ",
        effective_date="yesterday",
        colour="blue",
        serverless_granularity_ms=0,
        fixed_monthly={"oncall": -5},
    )
    for expected in (
        "currency: 'XYZ' is not an ISO 4217",
        "effective_date: must be a date",
        "colour: unknown key",
        "serverless_granularity_ms: must be a number > 0",
        "fixed_monthly.oncall: must be a number >= 0",
        "5 problem(s)",
    ):
        assert expected in text


def test_source_needs_url_and_date(tmp_path: Path) -> None:
    path = tmp_path / "nosource.yaml"
    book = {
        "name": "nosource",
        "currency": "USD",
        "effective_date": "2026-01-01",
        "prices": {
            "vcpu_hour": {"unit_price": 1.0, "unit": "USD/vCPU-hour"},
            "egress_gb": {"unit_price": 1.0, "unit": "USD/GB", "source": {"url": "ftp://x"}},
        },
    }
    path.write_text(yaml.safe_dump(book), encoding="utf-8")
    with pytest.raises(PriceBookError) as err:
        load_price_book(str(path))
    text = str(err.value)
    assert "prices.vcpu_hour.source: source must be a mapping" in text
    assert "prices.egress_gb.source.url: must be an http(s) URL" in text
    assert "prices.egress_gb.source.retrieved: must be a date" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nprices: {vcpu_hour: [\n", encoding="utf-8")
    with pytest.raises(PriceBookError, match=r"broken.yaml: line \d+: invalid YAML"):
        load_price_book(str(path))


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(PriceBookError, match="no such file"):
        load_price_book(str(tmp_path / "absent.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n", encoding="utf-8")
    with pytest.raises(PriceBookError, match="must be a YAML mapping"):
        load_price_book(str(tmp_path / "list.yaml"))


def test_extends_unknown_cycle_and_name_mismatch(tmp_path: Path, monkeypatch: Any) -> None:
    books = tmp_path / "books"
    write_book(books, "a", SIMPLE_PRICES, extends="b")
    write_book(books, "b", SIMPLE_PRICES, extends="a")
    write_book(books, "orphan", SIMPLE_PRICES, extends="no-such-book")
    (books / "renamed.yaml").write_text(
        (books / "a.yaml").read_text().replace("name: a", "name: other").replace("extends: b", ""),
        encoding="utf-8",
    )
    monkeypatch.setenv(ENV_VAR, str(books))
    with pytest.raises(PriceBookError, match=r"extends forms a cycle \(a -> b -> a\)"):
        load_price_book("a")
    with pytest.raises(PriceBookError, match="unknown price book 'no-such-book'"):
        load_price_book("orphan")
    with pytest.raises(PriceBookError, match="name 'other' differs from the file name 'renamed'"):
        load_price_book("renamed")
    problems = {i.name: i.problem for i in list_price_books()}
    assert problems["a"] and problems["orphan"] and problems["opencost-default"] is None


def test_overrides_replace_and_add_prices() -> None:
    book = load_price_book(
        "opencost-default",
        {
            "vcpu_hour": 0.05,
            "external:geo": 0.005,
            "fixed_monthly:oncall": 2000,
            "serverless_granularity_ms": 100,
            "monthly_calls": 1e6,
        },
    )
    vcpu, geo = book.get("vcpu_hour"), book.get("external:geo")
    assert (
        vcpu is not None and vcpu.unit_price == 0.05 and vcpu.source == "scenario pricing.overrides"
    )
    assert geo is not None and geo.unit == "USD/call"
    assert book.fixed_monthly == {"oncall": 2000.0}
    assert book.serverless_granularity_ms == 100 and book.monthly_calls == 1e6


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"vcpu_hour": -1}, "vcpu_hour: must be a number >= 0"),
        ({"cpu_hour": 1}, "cpu_hour: unknown price key"),
        ({"serverless_granularity_ms": 0}, "serverless_granularity_ms: must be > 0"),
        ({"egress_gb": "free"}, "egress_gb: must be a number >= 0"),
    ],
)
def test_bad_overrides(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(PriceBookError) as err:
        load_price_book("opencost-default", overrides)
    assert "pricing.overrides" in str(err.value) and expected in str(err.value)
    assert isinstance(err.value, InputError) and err.value.exit_code == 2
