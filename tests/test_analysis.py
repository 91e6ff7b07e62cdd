"""Search analyses: the Hessian eigenvalue against an explicit Hessian, cell depth/width by hand."""

import torch
from space_support import arch, bound, cnn_cells
from torch import nn

from pipeline.analysis.cell_shape import cell_depth, cell_width, genotype_shape
from pipeline.analysis.hessian import dominant_hessian_eigenvalue, power_iteration
from pipeline.config import SearchTraining
from pipeline.data import make_loader
from pipeline.methods import create_method
from pipeline.methods.darts import DartsMethod
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.primitives import PRIMITIVES
from pipeline.space.supernet import Supernet


def test_power_iteration_finds_the_largest_magnitude_eigenvalue():
    matrix = torch.diag(torch.tensor([0.5, -3.0, 2.0], dtype=torch.float64))
    value = power_iteration(lambda v: matrix @ v, 3, iterations=200, device=torch.device("cpu"))
    assert abs(value - (-3.0)) < 1e-8


def test_hessian_eigenvalue_matches_explicit_hessian_on_a_tiny_supernet():
    torch.manual_seed(0)
    space = bound("darts", nodes=2)
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES, 2), stem_multiplier=1,
                   in_channels=1).double()
    method = create_method(DartsMethod(algorithm="darts"), space, SearchTraining(nodes=2)).double()
    with torch.no_grad():
        for alpha in method.arch_parameters():
            alpha.normal_()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    dataset = torch.utils.data.TensorDataset(x, y)
    loader = make_loader(dataset, list(range(8)), batch_size=8, seed=0, shuffle=False, num_workers=0)
    criterion = nn.CrossEntropyLoss()

    estimate = dominant_hessian_eigenvalue(net, method, loader, criterion, torch.device("cpu"), batches=1,
                                           iterations=300)

    net.eval()
    alphas = method.arch_parameters()
    shapes = [a.shape for a in alphas]
    sizes = [a.numel() for a in alphas]

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        normal, reduce = (p.view(s) for p, s in zip(parts, shapes, strict=True))
        return criterion(net(x, arch(normal.softmax(-1), reduce.softmax(-1))), y)

    flat = torch.cat([a.detach().flatten() for a in alphas])
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    assert abs(estimate - dominant) <= 1e-3 * abs(dominant)


def test_darts_v2_cell_shape_matches_sdarts_numbers():
    # SDARTS section 5.x: "DARTS has width 3.5c and depth 3".
    assert cell_width(GENOTYPE_DARTS_V2.normal) == 3.5
    assert cell_depth(GENOTYPE_DARTS_V2.normal) == 3


def test_shape_of_hand_made_cells():
    chain = ((("sep_conv_3x3", 0), ("sep_conv_3x3", 1)), (("sep_conv_3x3", 2), ("skip_connect", 2)),
             (("sep_conv_3x3", 3), ("skip_connect", 3)), (("sep_conv_3x3", 4), ("skip_connect", 4)))
    assert cell_depth(chain) == 5 and cell_width(chain) == 1.0
    wide = tuple((("sep_conv_3x3", 0), ("sep_conv_3x3", 1)) for _ in range(4))
    assert cell_depth(wide) == 2 and cell_width(wide) == 4.0
    # A DATA-style node with three pairs, one of them from an intermediate node: width 2/3.
    multi = (
        (("sep_conv_3x3", 0), ("dil_conv_3x3", 0)),
        (("sep_conv_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 2)),
    )
    assert cell_width(multi) == 1 + 2 / 3 and cell_depth(multi) == 3


def test_genotype_shape_reports_both_cells():
    shape = genotype_shape(GENOTYPE_DARTS_V2)
    assert set(shape) == {"normal_depth", "normal_width", "reduce_depth", "reduce_width"}


def test_hessian_eigenvalue_on_the_recurrent_search_model_matches_its_explicit_hessian():
    """The same check on the recurrent space's search model: fixed token windows in place of image batches."""
    from pipeline.space.base import ArchWeights, BoundSpace
    from pipeline.space.rnn.build import build_search_model
    from pipeline.space.rnn.model import Dropouts
    from pipeline.space.rnn.operations import CELL
    from pipeline.space.rnn.settings import RnnSettings
    from pipeline.space.rnn.step_net import TokenWindow, TokenWindowNet, flat_targets, window_batch
    from pipeline.train.lm.search import HessianSchedule, MethodSearch

    torch.manual_seed(0)
    vocab, size, nodes = 5, 3, 2
    method = create_method(DartsMethod(algorithm="darts", space="rnn"), BoundSpace.of("rnn", RnnSettings(nodes, size)),
                           SearchTraining(nodes=nodes)).double()
    with torch.no_grad():
        method.arch_parameters()[0].normal_()
    net = TokenWindowNet(build_search_model(vocab, size, nodes, Dropouts(), batch_norm=True).double())
    stream = torch.randint(0, vocab, (24,))
    search = MethodSearch(method, net, stream, batch_size=2, bptt=3, a_optimizer=None, epochs=1,
                          hessian=HessianSchedule(every=1, batches=2, iterations=200))
    estimate = search.hessian_eigenvalue()

    # By hand: the first two bptt windows of the batchified stream (12 rows x 2), each from a zero state.
    rows = stream.view(2, 12).t()
    data = [window_batch(rows[0:4]), window_batch(rows[3:7])]
    alpha = method.arch_parameters()[0]
    net.eval()

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        weights = ArchWeights({CELL: flat.view(alpha.shape).softmax(-1)})
        return sum(nn.NLLLoss()(net(TokenWindow(x.tokens), weights), y) for x, y in data) / len(data)

    hessian = torch.autograd.functional.hessian(loss_of, alpha.detach().flatten())
    eigenvalues = torch.linalg.eigvalsh(hessian)
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    assert abs(estimate - dominant) <= 1e-3 * abs(dominant)
    assert flat_targets(rows[1:4]).equal(data[0][1])
