"""Grading agreement: tricky (truth, prediction) pairs through answers.grade, the grader every reward
and metric uses. Each verdict is what a careful human grader would say. Run:

    python -m pytest tests/test_grading.py -q

A pair the grader gets wrong stays in the table as a strict xfail with the reason: the table
documents the grader, and an xfail that starts passing fails the run so the table is updated.
"""
import pytest

from answers import grade

WORDS = pytest.mark.xfail(strict=True, reason="numbers written as words are not parsed by math-verify")

PAIRS = [
    # fractions and decimals
    ("1/2", "0.5", True), ("0.5", "1/2", True), ("\\frac{1}{2}", "\\dfrac{1}{2}", True), ("\\frac12", "1/2", True),
    ("\\tfrac{3}{4}", "0.75", True), ("1/2", "2/4", True), ("\\frac{1}{2}", "\\frac{2}{4}", True),
    ("1/3", "0.333", False), ("\\frac{7}{2}", "3\\frac{1}{2}", True), ("-\\frac{1}{2}", "\\frac{-1}{2}", True),
    ("3.0", "3", True), ("3.5", "3.50", True), ("6", "6.0001", False), ("5", "5.", True),
    # percents, units, currency, degrees
    ("50\\%", "50", True), ("50\\%", "50\\%", True), ("10\\text{ cm}", "10", True), ("5 \\text{ dollars}", "5", True),
    ("8\\text{ m}^2", "8", True), ("\\$18.90", "18.90", True), ("90^\\circ", "90", True),
    # thousands separators
    ("1,000", "1000", True), ("1{,}000", "1000", True), ("12,345", "12345", True), ("10,\\!000", "10000", True),
    ("1000000", "1{,}000{,}000", True),
    # intervals, tuples, sets, \left( \right)
    ("[2, 5)", "[2,5)", True), ("[2, 5)", "(2, 5)", False), ("(-\\infty, 3]", "(-\\infty,3]", True),
    ("(1, 2)", "(1,2)", True), ("(1, 2)", "(2, 1)", False), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
    ("(3, -1)", "\\left(3,-1\\right)", True), ("\\{1, 2\\}", "\\{2, 1\\}", True), ("1, 2, 3", "3, 2, 1", True),
    ("2", "2, 3", False), ("x \\in [1, 2]", "[1,2]", True),
    # equations vs values
    ("x = 3", "3", True), ("3", "x=3", True), ("y = 2x + 1", "2x+1", True), ("a=2, b=3", "2, 3", True),
    # algebra, radicals, constants
    ("2\\sqrt{3}", "\\sqrt{12}", True), ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True), ("x^2+2x+1", "(x+1)^2", True), ("3 + 2i", "2i + 3", True),
    ("10^{6}", "1000000", True), ("\\pi", "3.14", False), ("e", "2.718", False), ("\\infty", "\\infty", True),
    ("-5", "- 5", True), ("-5", "5", False),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    # text answers and multiple choice
    ("\\text{Evelyn}", "Evelyn", True), ("\\text{(C)}", "C", True), ("\\text{B}", "B", True), ("B", "A", False),
    ("\\text{even}", "odd", False), ("2", "\\text{2}", True), ("0", "", False),
    pytest.param("4", "four", True, marks=WORDS),
    # unicode math (rewards.plain_math): vulgar fractions, full-width digits, unicode minus, superscripts, roots
    ("1/2", "½", True), ("\\frac{1}{3}", "⅓", True), ("0.75", "¾", True), ("\\frac{7}{2}", "3½", True),
    ("-3.5", "−3½", True), ("100", "１００", True), ("-5", "−5", True), ("x^2", "x²", True), ("\\sqrt{2}", "√2", True),
    ("1/3", "½", False), ("100", "１０", False),
]


def test_the_table_is_big_enough():
    assert len(PAIRS) >= 40


@pytest.mark.parametrize("truth,pred,expected", PAIRS)
def test_grader_verdict(truth, pred, expected):
    assert grade(pred, truth) is expected


def test_no_prediction_is_wrong():
    assert grade(None, "3") is False
