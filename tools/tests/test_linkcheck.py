"""tools.linkcheck finds a missing page, a missing anchor and a missing image, and follows no external link."""

from __future__ import annotations

from tools import linkcheck


def _write(path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>")


def test_broken_pages_anchors_and_images_are_found_and_external_links_counted(tmp_path, capsys):
    _write(tmp_path / "index.html", '<a href="chapters/one.html#fig">ok</a> <a href="chapters/one.html#nope">bad '
           'anchor</a> <a href="gone.html">bad page</a> <a href="https://example.org/x">external</a> '
           '<a href="#top" id="top">self</a> <img src="_static/missing.png">')
    _write(tmp_path / "chapters" / "one.html", '<h1 id="fig">One</h1><a href="../index.html">back</a>')
    _write(tmp_path / "_static" / "template.html", '<a href="{{ pathto(x) }}">a theme fragment, not a page</a>')
    report = linkcheck.check(tmp_path)
    assert report.pages == 2 and report.internal == 6
    assert sorted(link for _, link, _ in report.broken) == ["_static/missing.png", "chapters/one.html#nope",
                                                            "gone.html"]
    assert report.external == {"https://example.org/x"}
    assert linkcheck.main([str(tmp_path)]) == 1
    assert "3 broken" in capsys.readouterr().out


def test_a_clean_tree_passes(tmp_path):
    _write(tmp_path / "index.html", '<a href="a.html#x">a</a>')
    _write(tmp_path / "a.html", '<p id="x">x</p>')
    assert linkcheck.main([str(tmp_path)]) == 0
