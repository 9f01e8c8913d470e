from ringrl.rewards import extract_code_block, extract_last_boxed
from ringrl.rewards.extract import MAX_ANSWER_CHARS


def test_last_of_several_boxes():
    assert extract_last_boxed(r"first \boxed{1}, then \boxed{2}, finally \boxed{3}.") == "3"


def test_nested_braces():
    assert extract_last_boxed(r"so \boxed{\frac{1}{\sqrt{2}}} done") == r"\frac{1}{\sqrt{2}}"
    assert extract_last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"


def test_box_inside_box_and_fbox_and_bare():
    assert extract_last_boxed(r"\boxed{a + \boxed{b}}") == "b"
    assert extract_last_boxed(r"\fbox{7}") == "7"
    assert extract_last_boxed(r"the answer is $\boxed 42$") == "42"


def test_unbalanced_last_box_falls_back_to_previous():
    assert extract_last_boxed(r"\boxed{5} and then \boxed{6") == "5"


def test_no_box_and_non_string():
    assert extract_last_boxed("the answer is 5") is None
    assert extract_last_boxed(None) is None  # type: ignore[arg-type]
    assert extract_last_boxed(r"\boxed{}") == ""


class CountingStr(str):
    """A str that counts the characters a scanner reads one by one (``text[i]``)."""

    reads = 0

    def __getitem__(self, key):
        CountingStr.reads += 1
        return str.__getitem__(self, key)


def test_megabyte_response_reads_a_bounded_number_of_characters():
    """Linear search from the end: the characters examined one by one do not grow with the
    response (a counter, not a stopwatch)."""
    bound = 64 * (4 * MAX_ANSWER_CHARS + 16)  # at most 64 boxes tried, each scanned at most 4x the cap
    for text, want in (
        (("blah { " * 200_000) + r"\boxed{12}" + ("x" * 1_000_000), "12"),
        ("{" * 2_000_000 + r"\boxed{" + "{" * 1_000_000, None),
        ((r"\boxed{" + "{" * 10_000) * 100, None),  # many unbalanced boxes: only 64 are tried
    ):
        CountingStr.reads = 0
        assert extract_last_boxed(CountingStr(text)) == want
        assert CountingStr.reads <= bound, CountingStr.reads


def test_code_block_last_and_language():
    text = "x\n```python\nprint(1)\n```\ntext\n```cpp\nint main(){}\n```\n"
    assert extract_code_block(text) == ("cpp", "int main(){}\n")
    assert extract_code_block("```py\nprint(2)\n```") == ("py", "print(2)\n")


def test_code_block_unclosed_and_missing():
    assert extract_code_block("here:\n```python\nprint(3)") == ("python", "print(3)")
    assert extract_code_block("no code here") is None
