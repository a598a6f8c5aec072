"""Realism scores of procedural mutations, rule by rule, on concrete snippets."""
import textwrap

from episodes.engine.inject.mutators import Mutation, mutations
from episodes.engine.inject.mutators.realism import changed_lines, score


def _one(source: str, operator: str, contains: str) -> Mutation:
    source = textwrap.dedent(source)
    found = [m for m in mutations(source, "pkg/mod.py", operators=[operator], min_complexity=1) if contains in m.description]
    assert found, [m.description for m in mutations(source, "pkg/mod.py", operators=[operator], min_complexity=1)]
    return found[0]


MESSAGE = """
def report(items, limit):
    msg = ""
    for item in items:
        if item.size > limit:
            msg += f"{item.name} is too big\\n"
    return msg
"""

NUMBERS = """
def total(prices, discount):
    value = 0
    for price in prices:
        if price > discount:
            value += price - discount
    return value
"""


def test_string_augmented_subtract_scores_very_low_and_numeric_one_high():
    on_str = score(_one(MESSAGE, "change_operator", "`+=` → `-=`"))
    on_num = score(_one(NUMBERS, "change_operator", "`+=` → `-=`"))
    assert on_str.score <= 0.1 and any("TypeError" in n and "str" in n for n in on_str.notes)
    assert on_num.score >= 0.6
    assert on_num.score > on_str.score


def test_subtract_on_a_list_literal_is_a_type_error():
    source = """
    def tail(parts, extra):
        if extra:
            return parts + [extra]
        return parts
    """
    low = score(_one(source, "change_operator", "`+` → `-`"))
    assert low.score <= 0.1 and any("list" in n for n in low.notes)


def test_removed_assignment_leaving_a_name_undefined_scores_low():
    source = """
    def area(width, height):
        if width < 0:
            raise ValueError(width)
        scale = 2
        surface = width * height
        return surface * scale
    """
    undefined = score(_one(source, "remove_assignment", "surface = width"))
    assert undefined.score <= 0.2 and any("`surface`" in n and "NameError" in n for n in undefined.notes)
    counter = """
    class Box:
        def add(self, item):
            if item is None:
                return
            self.items.append(item)
            self.count = len(self.items)
    """
    forgotten = score(_one(counter, "remove_assignment", "self.count"))
    assert forgotten.score >= 0.5 > undefined.score


def test_return_none_replacing_a_value_scores_low_and_early_exit_removal_does_not():
    source = """
    def pick(items, key):
        if not items:
            return []
        best = sorted(items, key=key)
        return best[:3]
    """
    stub = score(_one(source, "remove_return_value", "`return best[:3]` → `return None`"))
    early = score(_one(source, "remove_return_value", "removed early"))
    assert stub.score < 0.5 and any("return None" in n for n in stub.notes)
    assert early.score >= 0.5 > stub.score


def test_body_reduced_to_pass_scores_very_low():
    source = """
    def check(value, low):
        if value < low:
            raise ValueError(value)
    """
    # remove_condition/others cannot empty this; build the mutation by hand like the engine would
    source = textwrap.dedent(source)
    mutated = source.replace("    if value < low:\n        raise ValueError(value)\n", "    pass\n")
    assert mutated != source
    m = Mutation("remove_condition", "pkg/mod.py", "check", 3, "hand-made", source, mutated)
    assert score(m).score <= 0.1


def test_boundary_and_boolean_changes_score_high():
    source = """
    def allowed(age, member, banned):
        if age >= 18 and member and not banned:
            return True
        return False
    """
    boundary = score(_one(source, "flip_comparison", ">="))
    boolean = score(_one(source, "break_bool_chain", "dropped"))
    assert boundary.score >= 0.85 and boolean.score >= 0.75
    stub = score(_one(NUMBERS, "remove_return_value", "→ `return None`"))
    assert boundary.score > stub.score


def test_off_by_one_bound_beats_a_magic_number_and_same_type_swap_is_high():
    source = """
    def window(items, size):
        if size > 1000:
            size = 1000
        return items[: size]
    """
    bound = score(_one(source, "off_by_one", "`size` → `size + 1`"))
    magic = score(_one(source, "off_by_one", "`1000` → `1001`"))
    assert bound.score >= 0.85 > magic.score
    call = """
    def move(src, dst):
        if src == dst:
            return None
        return copy(src, dst)
    """
    swapped = score(_one(call, "swap_call_arguments", "swapped"))
    assert swapped.score >= 0.8


def test_changed_lines_is_the_file_and_clean_line_of_the_change():
    m = _one(NUMBERS, "change_operator", "`+=` → `-=`")
    assert changed_lines(m.patch) == {("pkg/mod.py", m.line)}
    other = _one(NUMBERS, "swap_operands", "price - discount")
    assert changed_lines(other.patch) == {("pkg/mod.py", m.line)}  # the same line, another change
