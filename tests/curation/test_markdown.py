"""Problem statements render as safe Markdown: code and fences as code, raw HTML and script
URLs never live."""
import pytest

from episodes.templatetags.markdown import markdown


def test_code_renders_as_code():
    html = markdown("`band_for` is off by one:\n\n```python\nassert f(1) == 2\n```\n")
    assert "<code>band_for</code>" in html and '<pre><code class="language-python">assert f(1) == 2' in html


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
                                     "[click](javascript:alert(1))", "[x](data:text/html;base64,PHNjcmlwdD4=)"])
def test_nothing_hostile_goes_live(hostile):
    html = markdown(hostile)
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html and 'href="data' not in html


@pytest.mark.django_db
def test_the_bug_page_renders_the_statement(staff_client):
    from episodes.models import Bug, Repository

    repo = Repository.objects.create(name="r", source="/x", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v", status="valid",
                             problem_statement="Calling `quote()` fails.\n\n<b>bold?</b>")
    page = staff_client.get(f"/bugs/{bug.pk}/").content.decode()
    assert "<code>quote()</code>" in page and "&lt;b&gt;bold?&lt;/b&gt;" in page


@pytest.mark.django_db
def test_the_bug_list_shows_each_statement_under_its_row(staff_client):
    from episodes.models import Bug, Repository

    repo = Repository.objects.create(name="r", source="/x", pinned_commit="a" * 40)
    Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v", status="valid",
                       problem_statement="Shipping is charged twice for parcels of exactly 2 kg. " * 10)
    page = staff_client.get("/bugs/").content.decode()
    assert 'class="statement-preview muted">Shipping is charged twice for parcels of exactly 2 kg.' in page
    assert page.count("Shipping is charged twice") <= 4  # a preview, not the whole text
