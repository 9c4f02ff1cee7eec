from tests.api import Api, assert_problem


def test_expense_and_balances(api: Api) -> None:
    a, b = api.user("Ann"), api.user("Bob")
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "100.00", a, [a, b])
    assert api.nets(a, gid) == {a.id: "50.00", b.id: "-50.00"}
    assert_problem(api.settle(a, gid, b, a, "50.01", expect=None), 422, "settlement-exceeds-balance")
