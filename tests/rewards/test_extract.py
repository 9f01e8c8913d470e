import time

from ringrl.rewards import extract_code_block, extract_last_boxed


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


def test_megabyte_response_is_fast():
    text = ("blah { " * 200_000) + r"\boxed{12}" + ("x" * 1_000_000)
    t = time.perf_counter()
    assert extract_last_boxed(text) == "12"
    assert extract_last_boxed("{" * 2_000_000 + r"\boxed{" + "{" * 1_000_000) is None
    assert time.perf_counter() - t < 2.0


def test_code_block_last_and_language():
    text = "x\n```python\nprint(1)\n```\ntext\n```cpp\nint main(){}\n```\n"
    assert extract_code_block(text) == ("cpp", "int main(){}\n")
    assert extract_code_block("```py\nprint(2)\n```") == ("py", "print(2)\n")


def test_code_block_unclosed_and_missing():
    assert extract_code_block("here:\n```python\nprint(3)") == ("python", "print(3)")
    assert extract_code_block("no code here") is None
