"""A graph's PDF carries the provenance in its document information, as a PNG does in text chunks."""
from __future__ import annotations

import shutil

import pytest

from dreamlab.errors import DreamlabError
from dreamlab.inspect.pdf_info import add_pdf_info, read_pdf_info


def minimal_pdf() -> bytes:
    """A one-page PDF with a classic cross-reference table, its offsets counted."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref


def test_the_info_is_appended_and_read_back_with_any_characters(tmp_path):
    pdf = tmp_path / "g.pdf"
    original = minimal_pdf()
    pdf.write_bytes(original)
    add_pdf_info(pdf, {"dreamlab:model": "lenet-digits", "dreamlab:weights": "/tmp/wéights (1).pt"})
    data = pdf.read_bytes()
    assert data.startswith(original)  # an incremental update: what the writer wrote stays as it was
    assert read_pdf_info(pdf) == {"Creator": "dreamlab", "dreamlab:model": "lenet-digits",
                                  "dreamlab:weights": "/tmp/wéights (1).pt"}
    new_object = data.index(b"\n4 0 obj\n") + 1
    assert b"4 1\n%010d 00000 n \n" % new_object in data  # the xref entry points at the new object
    assert b"/Size 5 /Root 1 0 R /Info 4 0 R /Prev %d" % (original.rindex(b"\nxref\n") + 1) in data
    assert data.endswith(b"startxref\n%d\n%%%%EOF\n" % data.rindex(b"xref\n0 1\n"))


def test_a_pdf_without_a_classic_trailer_is_refused_in_one_line(tmp_path):
    pdf = tmp_path / "stream.pdf"
    pdf.write_bytes(b"%PDF-1.5\n1 0 obj\n<< /Type /XRef >>\nendobj\nstartxref\n9\n%%EOF\n")
    with pytest.raises(DreamlabError, match=r"^stream.pdf has no classic PDF trailer; cannot add the provenance"):
        add_pdf_info(pdf, {"dreamlab:model": "x"})
    assert read_pdf_info(pdf) == {}


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (apt-get install graphviz)")
def test_graph_writes_its_provenance_into_a_pdf(tmp_path):
    import dreamlab

    dreamlab.graph("lenet-digits", out=tmp_path / "lenet.pdf")
    info = read_pdf_info(tmp_path / "lenet.pdf")
    assert info["dreamlab:model"] == "lenet-digits" and info["dreamlab:input"] == "1x28x28"
    assert info["dreamlab:weights"] == "none" and info["Creator"] == "dreamlab"
