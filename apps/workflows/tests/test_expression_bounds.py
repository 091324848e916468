"""Issue 21 items 2 and 19 in workflow expressions.

Expressions had a 1 MB cap that `~` and `+` walked past, and a value that was not data was
turned into text with `str()` (a function's repr, with its address). A step's expressions
now run in a bounded child process (`core.bounded`), each value is measured against the
cap without being built, and only JSON data comes out.
"""

from __future__ import annotations

import pytest

from apps.workflows.services.workflow_executor import (
    EXPRESSION_MAX_BYTES,
    SKIP,
    ExpressionError,
    step_input,
)

pytestmark = pytest.mark.django_db

BIG = "x" * (EXPRESSION_MAX_BYTES * 6 // 10)


def run(input_: object, *, condition: str | None = None, **inputs: object) -> object:
    step: dict[str, object] = {"id": "s", "type": "api_call", "input": input_}
    if condition is not None:
        step["if"] = condition
    return step_input(step, {"inputs": inputs, "steps": {"a": {"output": {"n": 2}, "status": "completed"}}})


def failure(input_: object, **inputs: object) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        run(input_, **inputs)
    return caught.value


@pytest.mark.parametrize(
    "expression",
    [
        "${{ inputs.big ~ inputs.big }}",
        "${{ inputs.big + inputs.big }}",
        "${{ [inputs.big] * 2 }}",
        "${{ [inputs.big, inputs.big] }}",
        "${{ inputs.big|indent(2) ~ inputs.big }}",
        "${{ '%s%s' % (inputs.big, inputs.big) }}",
        "${{ ('{0}{0}').format(inputs.big) }}",
    ],
)
def test_an_expression_value_above_the_cap_is_refused(expression):
    error = failure({"q": expression}, big=BIG)
    assert error.code == "output_limit_exceeded", error.message


def test_interpolated_text_is_sized_as_it_grows():
    error = failure({"q": "${{ inputs.big }}," * 8}, big=BIG)
    assert error.code == "output_limit_exceeded"


@pytest.mark.parametrize(
    "expression", ["${{ range }}", "${{ lipsum }}", "${{ inputs.name.upper }}", "${{ ['a']|map('upper') }}"]
)
def test_only_data_comes_out_of_an_expression(expression):
    error = failure({"q": expression}, name="demo")
    assert "0x" not in error.message and " at 0" not in error.message, error.message


def test_a_step_over_the_memory_limit_fails_limit_exceeded(settings):
    settings.KILN_RENDER_MEMORY_LIMIT = 64 * 1024 * 1024
    # 360 MB, far past the 64 MiB (the child may first reuse memory this process freed earlier)
    items = ", ".join(f"inputs.big ~ {i}" for i in range(600))
    error = failure({"q": "${{ [" + items + "]|length }}"}, big=BIG)
    assert error.code == "limit_exceeded", error.message


def test_ordinary_expressions_still_evaluate():
    assert run(
        {"n": "${{ steps.a.output.n * 2 }}", "s": "id-${{ steps.a.output.n }}", "l": "${{ range(3)|list }}"}
    ) == {
        "n": 4,
        "s": "id-2",
        "l": [0, 1, 2],
    }
    assert run({"q": 1}, condition="${{ steps.a.output.n > 5 }}") is SKIP
