"""CSV import from the admin pages: the CLI's importer, its progress live, its report; and an
upload the importer cannot read is refused with its reason before anything is stored."""

from pathlib import Path

from playwright.async_api import expect
from sqlalchemy import func, select

from helpdesk.auth.models import Role
from helpdesk.customers.models import Customer, Order
from helpdesk.imports.models import ImportRun, ImportSummary
from tests.conftest import Staff
from tests.web.conftest import Peek, Tab, Tabs

DATA = Path(__file__).parent.parent / "data"


async def upload(tab: Tab, kind: str, name: str, content: bytes, mime: str = "text/csv") -> None:
    form = tab.page.locator("#import-form")
    await form.locator(f"input[name=kind][value={kind}]").check()
    await form.locator("input[name=file]").set_input_files(
        {"name": name, "mimeType": mime, "buffer": content})
    await form.locator("button[type=submit]").click()


async def test_orders_csv_imported_with_live_progress_and_the_clis_report(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    tab = await tabs.open(boss)
    await tab.goto("/admin/import")
    rows = "".join(f"{9000 + n},山田,太郎,ﾔﾏﾀﾞ,ﾀﾛｳ,c{n}@example.jp,,\n" for n in range(12_000))
    big = ("顧客番号,姓,名,セイ,メイ,メールアドレス,電話番号,顧客タグ\n" + rows).encode()
    await upload(tab, "customers", "顧客一覧.csv", big)
    progress = tab.page.locator("#import-run .import-progress")
    await expect(progress).to_be_visible()  # the answer to the upload shows the run going
    await expect(tab.page.locator("#import-run .import-done")).to_be_visible(timeout=60_000)
    await expect(tab.page.locator("#import-run td.created")).to_have_text("12000")
    assert await peek.scalar(select(func.count()).select_from(Customer)) == 12_000

    await upload(tab, "orders", "受注.csv", (DATA / "orders_bad_rows.csv").read_bytes())
    await expect(tab.page.locator("#import-run h2")).to_contain_text("受注.csv")
    await expect(tab.page.locator("#import-run .import-done")).to_be_visible(timeout=30_000)
    run = await peek.scalar(select(ImportRun).where(ImportRun.kind == "orders"))
    summary = ImportSummary.model_validate(run.summary)
    assert summary.skipped > 0 and summary.problems  # the file has rows the importer refuses
    report = tab.page.locator("#import-run")
    await expect(report.locator("td.rows")).to_have_text(str(summary.rows))
    await expect(report.locator("td.created")).to_have_text(str(summary.created))
    await expect(report.locator("td.skipped")).to_have_text(str(summary.skipped))
    items = report.locator(".import-problems li")
    assert await items.all_inner_texts() == [f"{p.line}行目: {p.reason}" for p in summary.problems]
    assert await peek.scalar(select(func.count()).select_from(Order)) == summary.created
    tab.assert_clean()


async def test_an_upload_the_importer_cannot_read_is_refused_with_its_reason(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    admin = await staff.create("admin", Role.admin)
    tab = await tabs.open(admin)
    await tab.goto("/admin/import")
    toasts = tab.page.locator("#toasts")
    await upload(tab, "customers", "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png")
    await expect(toasts).to_contain_text("CSVファイルではありません")
    await upload(tab, "customers", "顧客.csv", b"email,name\nx@example.jp,\x81 bad\n")
    await expect(toasts).to_contain_text("UTF-8でもシフトJISでもありません")
    await upload(tab, "orders", "no_columns.csv", "品名,数量\n煎茶,1\n".encode())
    await expect(toasts).to_contain_text("列が見つかりません")
    # Over the limit: the browser says so before sending; the server refuses it too.
    oversized = b"email\n" + b"x@example.jp\n" * 700_000
    form = tab.page.locator("#import-form")
    await form.locator("input[name=file]").set_input_files(
        {"name": "huge.csv", "mimeType": "text/csv", "buffer": oversized})
    message = await form.locator("input[name=file]").evaluate("el => el.validationMessage")
    assert "8メガバイトを超えています" in message
    status = await tab.page.evaluate("""size => {
      const body = new FormData();
      body.append('kind', 'customers');
      body.append('file', new Blob(['email\\n' + 'x'.repeat(size)]), 'huge.csv');
      return fetch('/admin/import', {method: 'POST', body, headers: {'HX-Request': 'true',
        'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}})
        .then(async r => [r.status, await r.text()]);
    }""", 8 * 1024 * 1024 + 1)
    assert status[0] == 422 and "8メガバイトを超えています" in status[1]
    assert await peek.scalar(select(func.count()).select_from(Customer)) == 0
    assert await peek.scalar(select(func.count()).select_from(ImportRun)) == 0
    operator = await staff.create("sato", Role.operator)
    refused = await tabs.open(operator)
    response = await refused.page.goto(refused.base + "/admin/import")
    assert response is not None and response.status == 403
    tab.assert_clean()
