"""scripts.encoder_ceiling: counting a run's multiply-adds from the graph, timing one product."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from scripts.encoder_ceiling import ProductShapes, product_shapes, product_speed


def _layer_graph():
    """A toy layer: x @ Wq (4x4), scores = q @ k^T (two computed tensors), x @ Wup (4x8),
    and one MatMul by a 3-D initializer that is not a weight matrix of the model."""
    inits = [
        numpy_helper.from_array(np.ones((4, 4), np.float32), "Wq"),
        numpy_helper.from_array(np.ones((4, 8), np.float32), "Wup"),
        numpy_helper.from_array(np.ones((2, 4, 4), np.float32), "batched"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "Wq"], ["q"]),
        helper.make_node("Transpose", ["q"], ["kt"], perm=[1, 0]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("MatMul", ["x", "Wup"], ["up"]),
        helper.make_node("MatMul", ["x", "batched"], ["other"]),
    ]
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("up", TensorProto.FLOAT, [None, 8])],
        inits,
    )
    return helper.make_model(graph)


def test_weight_matrices_and_attention_products_are_told_apart():
    shapes = product_shapes(_layer_graph())
    assert shapes.weights == ((4, 4), (4, 8))
    assert shapes.activation_products == 1
    assert shapes.hidden == 4


def test_multiply_adds_grow_with_the_square_of_the_length_only_through_attention():
    shapes = ProductShapes(weights=((384, 384), (384, 1536)), activation_products=2, hidden=384)
    per_token = 384 * 384 + 384 * 1536
    assert shapes.macs_per_text(10) == 10 * per_token + 2 * 10 * 10 * 384
    assert shapes.macs_per_text(20) - 2 * shapes.macs_per_text(10) == 2 * 384 * (400 - 2 * 100)


def test_a_graph_without_weight_matrices_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(Exception, match="no weight matrices"):
        product_shapes(helper.make_model(graph))


@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_a_product_is_timed_through_onnx_runtime(kind):
    # A graph ONNX Runtime would refuse raises here.
    assert product_speed(kind, 8, 32, 16, budget=100_000) > 0
