import torch

from training.rl.mwer import mwer_loss


def test_mwer_gradient_moves_probability_to_the_better_hypothesis() -> None:
    lp = torch.tensor([[-1.0, -1.0, -1.0]], requires_grad=True)
    errors = torch.tensor([[0.0, 0.5, 1.0]])
    loss = mwer_loss(lp, errors)
    assert abs(float(loss)) < 1e-6  # uniform P_hat: expected error equals the mean
    loss.backward()
    assert lp.grad[0, 0] < 0 < lp.grad[0, 2]  # descending raises the best hypothesis


def test_mwer_ignores_masked_hypotheses_and_is_zero_for_equal_errors() -> None:
    lp = torch.tensor([[-0.5, -2.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    errors = torch.tensor([[0.2, 0.2, 9.0]])
    assert float(mwer_loss(lp, errors, mask)) == 0.0
    skew = mwer_loss(torch.tensor([[0.0, -5.0]]), torch.tensor([[1.0, 0.0]]))
    assert float(skew) > 0.4
