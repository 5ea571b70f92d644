"""The report's pages are Jinja2 templates: values are escaped, charts are JSON blocks that cannot
close their script element, a missing value fails the build, and a page is a template and a
registry entry."""
import json

import jinja2
import pandas as pd
import pytest

from cloud_assets.lib.audit.kinds import CONFUSION, MISSING, SPURIOUS
from cloud_assets.report import pages, registry

HOSTILE = '<script>alert(1)</script>"'


def _render(source: str, **context) -> str:
    return pages._templates().from_string('{% import "macros.j2" as m %}' + source).render(**context)


def test_values_are_escaped_and_chart_specs_stay_inside_their_block():
    table = pages.table(pd.DataFrame({"image": [HOSTILE], "score": [0.12345]}))
    chart = pages.Charts("issues.md")({"title": HOSTILE})
    out = _render("{{ m.table(t) }}\n{{ m.chart(c) }}\n{{ m.gallery(g) }}", t=table, c=chart,
                  g=[{"thumb": "a.jpg", "full": "b.jpg", "caption": HOSTILE, "style": "fp", "data": {"image": HOSTILE}}])
    assert "<script>alert" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in out
    assert "| 0.123 |" in out
    block = out.split('class="chart-spec" data-chart="chart-issues-1">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block) == {"title": HOSTILE}  # the spec's own "</script>" is written \u003c/script\u003e


def test_a_value_the_template_names_but_the_builder_omits_fails():
    with pytest.raises(jinja2.UndefinedError):
        _render("{{ missing }}")


def test_a_page_is_a_template_and_a_registry_entry(monkeypatch, tmp_path):
    env = pages._templates()
    monkeypatch.setattr(env, "loader", jinja2.ChoiceLoader([env.loader, jinja2.DictLoader(
        {"extra.md.j2": "# Extra\n\n{{ note }} for {{ classes|join(', ') }}\n"})]))
    section = registry.Section("Extra", lambda classes: [("Extra", "extra.md")],
                               lambda data, files, img, rng: [pages.render("extra.md.j2", files[0], note="<b>n</b>",
                                                                           classes=data.class_names)])
    monkeypatch.setattr(registry, "SECTIONS", (section,))

    class Data:
        class_names = ["Fish", "Sugar"]

    assert registry.navigation(Data.class_names) == [{"Extra": "extra.md"}]
    (page,) = registry.generate(Data(), tmp_path, None, log=lambda m: None)
    assert page.name == "extra.md" and page.text == "# Extra\n\n&lt;b&gt;n&lt;/b&gt; for Fish, Sugar\n"


def test_a_class_confusion_s_menu_offers_only_the_classes_with_a_mask_to_move():
    """Accepting a class confusion moves the chosen class's mask to the candidate's class: the menu
    offers the classes labelled on the image; a spurious label's may move its mask to any class."""
    classes, labelled = ["Fish", "Flower", "Sugar", "Gravel"], ["Fish", "Gravel"]
    confusion = pages._review_controls({"kind": CONFUSION, "class": "Sugar", "other_class": "Gravel"}, classes,
                                       labelled)
    assert confusion["others"] == ["Fish", "Gravel"] and pages._option_values(confusion) == ["Fish", "Gravel"]
    spurious = pages._review_controls({"kind": SPURIOUS, "class": "Fish", "other_class": ""}, classes, labelled)
    assert pages._option_values(spurious) == ["", "Flower", "Sugar", "Gravel"]
    assert pages._option_values(pages._review_controls({"kind": MISSING, "class": "Sugar", "other_class": ""},
                                                       classes, labelled)) == [""]
