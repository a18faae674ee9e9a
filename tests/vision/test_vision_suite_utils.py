"""torchvision.utils cases (as torchvision's test/test_utils.py exercises them):
ember.vision.utils against torchvision.utils 0.28 on the same images."""
import io

import numpy as np
import pytest
import torch

import ember
from ember.vision import utils
from vision_suite_common import close, image, needs_tv, same_ints, tv

pytestmark = needs_tv
if tv is not None:
    import torchvision.utils as tu


@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (1, 3, 4, 4), (7, 1, 5, 5), (3, 4, 4)])
@pytest.mark.parametrize("nrow,padding,pad_value", [(8, 2, 0.0), (2, 1, 0.5), (3, 0, 1.0)])
def test_make_grid(shape, nrow, padding, pad_value):
    a = image(1, shape)
    close(utils.make_grid(ember.tensor(a), nrow, padding, pad_value=pad_value),
          tu.make_grid(torch.tensor(a), nrow, padding, pad_value=pad_value))


@pytest.mark.parametrize("value_range,scale_each", [(None, False), (None, True),
                                                    ((0.2, 0.8), False), ((0.0, 0.5), True)])
def test_make_grid_normalize(value_range, scale_each):
    a = image(2, (4, 3, 5, 5)) * 3 - 1
    close(utils.make_grid(ember.tensor(a), 2, normalize=True, value_range=value_range,
                          scale_each=scale_each),
          tu.make_grid(torch.tensor(a), 2, normalize=True, value_range=value_range,
                       scale_each=scale_each), atol=1e-6)


def test_make_grid_list_and_2d_and_errors():
    imgs = [image(3 + i, (3, 4, 5)) for i in range(3)]
    close(utils.make_grid([ember.tensor(a) for a in imgs], 2),
          tu.make_grid([torch.tensor(a) for a in imgs], 2))
    a = image(6, (4, 5))
    close(utils.make_grid(ember.tensor(a)), tu.make_grid(torch.tensor(a)))
    with pytest.raises(TypeError, match="tensor or list of tensors"):
        utils.make_grid([ember.tensor(a), 3])
    with pytest.raises(TypeError, match="value_range"):
        utils.make_grid(ember.tensor(imgs[0]), normalize=True, value_range=[0, 1])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_save_image(tmp_path, fmt):
    a = image(7, (2, 3, 6, 7))
    e_buf, t_buf = io.BytesIO(), io.BytesIO()
    utils.save_image(ember.tensor(a), e_buf, format=fmt, nrow=1, padding=1)
    tu.save_image(torch.tensor(a), t_buf, format=fmt, nrow=1, padding=1)
    assert e_buf.getvalue() == t_buf.getvalue()
    path = tmp_path / f"grid.{fmt}"
    utils.save_image(ember.tensor(a), path)
    assert path.stat().st_size > 0


BOXES = np.array([[0, 0, 10, 8], [4, 3, 20, 14], [12, 1, 23, 5], [2, 9, 6, 15]], np.float32)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("kwargs", [
    {}, {"colors": "red"}, {"colors": ["red", (0, 255, 0), "#0000ff", "yellow"]},
    {"fill": True}, {"width": 3}, {"labels": ["a", "bb", "c", "dog"]},
    {"labels": ["a", "b", "c", "d"], "fill_labels": True},
    {"labels": ["x", "y", "z", "w"], "label_colors": "white", "colors": "blue"}])
def test_draw_bounding_boxes(dtype, kwargs):
    a = image(8, (3, 16, 24), dtype)
    e = utils.draw_bounding_boxes(ember.tensor(a), ember.tensor(BOXES), **kwargs)
    t = tu.draw_bounding_boxes(torch.tensor(a), torch.tensor(BOXES), **kwargs)
    if dtype == "uint8":
        same_ints(e, t)
    else:
        close(e, t, atol=1e-6)


def test_draw_bounding_boxes_gray_and_errors():
    a = image(9, (1, 16, 24), "uint8")
    same_ints(utils.draw_bounding_boxes(ember.tensor(a), ember.tensor(BOXES)),
              tu.draw_bounding_boxes(torch.tensor(a), torch.tensor(BOXES)))
    bad = BOXES.copy()
    bad[0, 0] = 30
    with pytest.raises(ValueError, match="xmin, ymin, xmax, ymax"):
        utils.draw_bounding_boxes(ember.tensor(a), ember.tensor(bad))
    with pytest.raises(ValueError, match="labels"):
        utils.draw_bounding_boxes(ember.tensor(a), ember.tensor(BOXES), labels=["a"])
    with pytest.raises(ValueError, match="batches"):
        utils.draw_bounding_boxes(ember.zeros(2, 3, 4, 4, dtype=ember.uint8),
                                  ember.tensor(BOXES))
    with pytest.warns(UserWarning, match="No box"):
        utils.draw_bounding_boxes(ember.tensor(a), ember.zeros(0, 4))


def _masks(seed, n=3, hw=(10, 12)):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + hw) > 0.6


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("colors", [None, "green", ["red", (1, 2, 3), "blue"]])
def test_draw_segmentation_masks(dtype, alpha, colors):
    a, m = image(10, (3, 10, 12), dtype), _masks(11)
    e = utils.draw_segmentation_masks(ember.tensor(a), ember.tensor(m), alpha, colors)
    t = tu.draw_segmentation_masks(torch.tensor(a), torch.tensor(m), alpha, colors)
    if dtype == "uint8":
        same_ints(e, t, 1)
    else:
        close(e, t, atol=1e-6)


def test_draw_segmentation_masks_single_mask_and_errors():
    a, m = image(12, (3, 10, 12), "uint8"), _masks(13, 1)[0]
    same_ints(utils.draw_segmentation_masks(ember.tensor(a), ember.tensor(m)),
              tu.draw_segmentation_masks(torch.tensor(a), torch.tensor(m)), 1)
    with pytest.raises(ValueError, match="bool"):
        utils.draw_segmentation_masks(ember.tensor(a), ember.tensor(m.astype(np.uint8)))
    with pytest.raises(ValueError, match="same height and width"):
        utils.draw_segmentation_masks(ember.tensor(a), ember.zeros(1, 3, 3, dtype=ember.bool))
    with pytest.raises(ValueError, match="RGB"):
        utils.draw_segmentation_masks(ember.tensor(a[:1]), ember.tensor(m))


@pytest.mark.parametrize("connectivity,vis", [(None, None), ([(0, 1), (1, 2)], None),
                                              ([(0, 1), (1, 2)], [[True, False, True]])])
def test_draw_keypoints(connectivity, vis):
    a = image(14, (3, 20, 20), "uint8")
    k = np.array([[[2, 3], [10, 12], [17, 4]]], np.float32)
    kw = {"connectivity": connectivity, "colors": "red", "radius": 2, "width": 2}
    e = utils.draw_keypoints(ember.tensor(a), ember.tensor(k),
                             visibility=None if vis is None else ember.tensor(vis), **kw)
    t = tu.draw_keypoints(torch.tensor(a), torch.tensor(k),
                          visibility=None if vis is None else torch.tensor(vis), **kw)
    same_ints(e, t)


@pytest.mark.parametrize("shape", [(2, 7, 9), (3, 2, 5, 6)])
def test_flow_to_image(shape):
    f = (np.random.default_rng(15).normal(size=shape) * 3).astype(np.float32)
    same_ints(utils.flow_to_image(ember.tensor(f)), tu.flow_to_image(torch.tensor(f)), 1)


def test_flow_to_image_errors():
    with pytest.raises(ValueError, match="dtype"):
        utils.flow_to_image(ember.zeros(2, 3, 3, dtype=ember.float64))
    with pytest.raises(ValueError, match="shape"):
        utils.flow_to_image(ember.zeros(3, 3, 3))
