"""HTML -> PDF with headless Chromium, so the PDF report is the HTML report, paginated for print."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from honed.errors import HonedError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No network, no first-run or background services: the page is self-contained and nothing else should start.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--no-pdf-header-footer")


class PdfUnavailable(HonedError):
    status_code = 503
    error_type = "server_error"


def find_browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def html_to_pdf(html: str, timeout_s: float = 60.0) -> bytes:
    """Print `html` to PDF bytes; PdfUnavailable when no Chromium is installed or printing fails."""
    browser = find_browser()
    if browser is None:
        raise PdfUnavailable("PDF reports need Chromium (apt-get install chromium, or brew install chromium); "
                             "the .html report works without it", code="pdf_unavailable")
    with tempfile.TemporaryDirectory(prefix="honed-pdf-") as scratch:
        page, output = Path(scratch) / "report.html", Path(scratch) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [browser, *FLAGS, f"--user-data-dir={Path(scratch) / 'profile'}", f"--print-to-pdf={output}",
                   page.as_uri()]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise PdfUnavailable(f"Chromium did not print the report within {timeout_s:.0f} s") from None
        if not output.is_file() or output.stat().st_size == 0:
            raise PdfUnavailable("Chromium could not print the report to PDF")
        return output.read_bytes()
