import shutil

import pytest

from honed.evaluation import pdf


def test_without_chromium_the_pdf_report_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pdf.PdfUnavailable, match="PDF reports need Chromium") as caught:
        pdf.html_to_pdf("<p>hi</p>")
    assert caught.value.status_code == 503


@pytest.mark.skipif(pdf.find_browser() is None, reason="Chromium is installed by .ci/run")
def test_a_page_prints_to_a_pdf():
    document = pdf.html_to_pdf("<h1>honed</h1><p>" + "line<br>" * 200 + "</p>")
    assert document.startswith(b"%PDF-") and len(document) > 1000
