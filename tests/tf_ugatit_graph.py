"""A statement of the official TensorFlow U-GAT-IT graph in TensorFlow ops, for tests only (TensorFlow is the
optional `tf-oracle` extra; the harness never imports it).

Written from the documented facts of taki0112/UGATIT (ops.py, UGATIT.py): the same variable scopes, names
and shapes (kernels HWIO and (in, out), spectral norm's `u` [1, out], Adam slots), NHWC images, ops.conv's
asymmetric reflection padding, instance norms with scale and shift, one shared CAM classifier whose maps
are weighted by kernel + bias, an MLP of width ch * n_res, AdaLIN with biased moments and smoothing
clip(rho - 0.1, 0, 1), LIN, nearest x2 up-sampling, and spectral norm by one power iteration from u.
Every variable is drawn at random (biases, norms and rho too), so a tensor mapped to the wrong place
changes the output. `build_checkpoint` saves with TensorFlow's own saver (tf.compat.v1.train.Saver) and
returns the graph's outputs for given inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
EPS = 1e-5


def _variable(name, shape, low=None):
    if low is not None:   # rho: within [0, 1]; gamma near 1
        initializer = v1.random_uniform_initializer(low[0], low[1])
    else:
        initializer = v1.random_normal_initializer(stddev=0.1)
    return v1.get_variable(name, shape, tf.float32, initializer=initializer)


def _l2_normalize(x):
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x)), 1e-12))


def _spectral(w):
    shape = w.shape.as_list()
    matrix = tf.reshape(w, [-1, shape[-1]])
    u = v1.get_variable("u", [1, shape[-1]], tf.float32, initializer=v1.random_normal_initializer(), trainable=False)
    v_hat = _l2_normalize(tf.matmul(u, tf.transpose(matrix)))
    u_hat = _l2_normalize(tf.matmul(v_hat, matrix))
    sigma = tf.matmul(tf.matmul(v_hat, matrix), tf.transpose(u_hat))
    return tf.reshape(matrix / sigma, shape)


def conv(x, out, kernel, stride, pad, scope, sn=False):
    with v1.variable_scope(scope):
        if pad:
            if (kernel - stride) % 2 == 0:
                before = after = pad
            else:
                before, after = pad, kernel - stride - pad
            x = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]], mode="REFLECT")
        cin = x.shape.as_list()[-1]
        if sn:
            w = _spectral(_variable("kernel", [kernel, kernel, cin, out]))
            b = _variable("bias", [out])
        else:
            with v1.variable_scope("conv2d"):
                w = _variable("kernel", [kernel, kernel, cin, out])
                b = _variable("bias", [out])
        return tf.nn.conv2d(x, w, [1, stride, stride, 1], "VALID") + b


def instance_norm(x, scope):
    with v1.variable_scope(scope):
        channels = x.shape.as_list()[-1]
        gamma, beta = _variable("gamma", [channels], (0.5, 1.5)), _variable("beta", [channels])
        mean, var = tf.nn.moments(x, [1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + EPS) * gamma + beta


def _layer_instance(x, rho):
    mean_i, var_i = tf.nn.moments(x, [1, 2], keepdims=True)
    mean_l, var_l = tf.nn.moments(x, [1, 2, 3], keepdims=True)
    return rho * (x - mean_i) / tf.sqrt(var_i + EPS) + (1 - rho) * (x - mean_l) / tf.sqrt(var_l + EPS)


def cam(x, scope, sn):
    """The CAM block: one classifier for both poolings; returns (features, logits [N, 2])."""
    with v1.variable_scope(scope):
        channels = x.shape.as_list()[-1]
        kernel = _variable("kernel", [channels, 1])
        if sn:
            kernel = _spectral(kernel)
        bias = _variable("bias", [1])
    weights = tf.reshape(kernel + bias, [channels])
    gap_logit = tf.matmul(tf.reduce_mean(x, [1, 2]), kernel) + bias
    gmp_logit = tf.matmul(tf.reduce_max(x, [1, 2]), kernel) + bias
    return tf.concat([x * weights, x * weights], -1), tf.concat([gap_logit, gmp_logit], -1)


def generator(x, ch, n_res, light, scope):
    with v1.variable_scope(scope):
        x = tf.nn.relu(instance_norm(conv(x, ch, 7, 1, 3, "conv"), "ins_norm"))
        channel = ch
        for i in range(2):
            x = tf.nn.relu(instance_norm(conv(x, channel * 2, 3, 2, 1, f"conv_{i}"), f"ins_norm_{i}"))
            channel *= 2
        for i in range(n_res):
            with v1.variable_scope(f"resblock_{i}"):
                with v1.variable_scope("res1"):
                    y = tf.nn.relu(instance_norm(conv(x, channel, 3, 1, 1, "conv_0"), "instance_norm"))
                with v1.variable_scope("res2"):
                    y = instance_norm(conv(y, channel, 3, 1, 1, "conv_0"), "instance_norm")
            x = x + y
        x, cam_logit = cam(x, "CAM_logit", sn=False)
        x = tf.nn.relu(conv(x, channel, 1, 1, 0, "conv_1x1"))
        with v1.variable_scope("MLP"):
            h = tf.reduce_mean(x, [1, 2]) if light else tf.reshape(x, [-1, int(np.prod(x.shape.as_list()[1:]))])   # NHWC order
            width = ch * n_res
            for name in ("linear_0", "linear_1", "gamma", "beta"):
                with v1.variable_scope(name), v1.variable_scope("dense"):
                    inputs = h.shape.as_list()[-1]
                    layer = tf.matmul(h, _variable("kernel", [inputs, width])) + _variable("bias", [width])
                if name.startswith("linear"):
                    h = tf.nn.relu(layer)
                elif name == "gamma":
                    gamma = tf.reshape(layer, [-1, 1, 1, width])
                else:
                    beta = tf.reshape(layer, [-1, 1, 1, width])
        for i in range(n_res):
            with v1.variable_scope(f"adaptive_resblock{i}"):
                y = x
                for half in ("res1", "res2"):
                    with v1.variable_scope(half):
                        y = conv(y, channel, 3, 1, 1, "conv_0")
                        with v1.variable_scope("instance_layer_norm"):
                            rho = tf.clip_by_value(_variable("rho", [channel], (0.0, 1.0)) - 0.1, 0.0, 1.0)
                        y = _layer_instance(y, rho) * gamma + beta
                        if half == "res1":
                            y = tf.nn.relu(y)
            x = x + y
        for i in range(2):
            size = x.shape.as_list()[1] * 2
            x = v1.image.resize_nearest_neighbor(x, [size, size])
            x = conv(x, channel // 2, 3, 1, 1, f"up_conv_{i}")
            with v1.variable_scope(f"layer_ins_norm_{i}"):
                rho = _variable("rho", [channel // 2], (0.0, 1.0))
                g, b = _variable("gamma", [channel // 2], (0.5, 1.5)), _variable("beta", [channel // 2])
            x = tf.nn.relu(_layer_instance(x, rho) * g + b)
            channel //= 2
        return tf.tanh(conv(x, 3, 7, 1, 3, "G_logit")), cam_logit


def discriminator(x, ch, stride2_layers, scope):
    with v1.variable_scope(scope):
        channel = ch
        x = tf.nn.leaky_relu(conv(x, channel, 4, 2, 1, "conv_0", sn=True), 0.2)
        for i in range(1, stride2_layers):
            x = tf.nn.leaky_relu(conv(x, channel * 2, 4, 2, 1, f"conv_{i}", sn=True), 0.2)
            channel *= 2
        x = tf.nn.leaky_relu(conv(x, channel * 2, 4, 1, 1, "conv_last", sn=True), 0.2)
        channel *= 2
        x, cam_logit = cam(x, "CAM_logit", sn=True)
        x = tf.nn.leaky_relu(conv(x, channel, 1, 1, 0, "conv_1x1"), 0.2)
        return conv(x, 1, 4, 1, 1, "D_logit", sn=True), cam_logit


def build_checkpoint(folder: Path, *, ch: int, img_size: int, light: bool, n_res: int = 4, step: int = 1000,
                     seed: int = 0, inputs: dict[str, np.ndarray] | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    """Save a U-GAT-IT checkpoint of the TF layout under `folder` (as UGATIT.py names it) and return
    (its prefix, the graph's outputs for `inputs` {"A": NHWC, "B": NHWC})."""
    model = "UGATIT_light" if light else "UGATIT"
    directory = Path(folder) / f"{model}_tiny_lsgan_{n_res}resblock_6dis_1_1_10_10_1000_sn_smoothing"
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        shape = [None, img_size, img_size, 3]
        real_a, real_b = v1.placeholder(tf.float32, shape), v1.placeholder(tf.float32, shape)
        a2b, cam_a2b = generator(real_a, ch, n_res, light, "generator_B")
        b2a, cam_b2a = generator(real_b, ch, n_res, light, "generator_A")
        outputs = {"a2b": a2b, "b2a": b2a, "cam_a2b": cam_a2b, "cam_b2a": cam_b2a}
        for domain, images in (("A", real_a), ("B", real_b)):
            with v1.variable_scope(f"discriminator_{domain}"):
                outputs[f"local_{domain}"], outputs[f"local_cam_{domain}"] = discriminator(images, ch, 3, "local")
                outputs[f"global_{domain}"], outputs[f"global_cam_{domain}"] = discriminator(images, ch, 5, "global")
        trainable = v1.trainable_variables()
        loss = tf.add_n([tf.reduce_mean(tensor) for tensor in outputs.values()])
        v1.train.AdamOptimizer(1e-4, beta1=0.5, beta2=0.999).minimize(loss, var_list=trainable)   # the Adam slots
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            directory.mkdir(parents=True, exist_ok=True)
            prefix = saver.save(session, str(directory / f"{model}.model"), global_step=step)
            results = session.run(outputs, {real_a: inputs["A"], real_b: inputs["B"]}) if inputs else {}
    return Path(prefix), results


def main(argv: list[str] | None = None) -> None:
    """Run in its own process (TensorFlow and PyTorch in one process can crash each other's native
    libraries), once per test module (TensorFlow takes seconds to start):
        OUT --ch C --img-size S --inputs NPZ --resize NPZ --sizes S [S ...]
    saves a light and a full checkpoint under OUT/light and OUT/full, with OUT/<variant>/outputs.npz (the
    graph's outputs for the A and B of --inputs) and OUT/<variant>/tensors.npz (every tensor as TensorFlow's
    own checkpoint reader gives it, "/" spelt "__SLASH__"), and OUT/resized.npz: TF1's bilinear resize_images
    (legacy coordinates) of the `image` of --resize to each size (keys "s<size>"). Prints the two prefixes."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--ch", type=int, required=True)
    parser.add_argument("--img-size", type=int, required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--resize", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    image = np.load(args.resize)["image"]
    np.savez(out / "resized.npz", **{f"s{size}": v1.image.resize_bilinear(image[None], [size, size], align_corners=False,
                                                                           half_pixel_centers=False).numpy()[0]
                                     for size in args.sizes})
    inputs = dict(np.load(args.inputs))
    for variant in ("light", "full"):
        prefix, results = build_checkpoint(out / variant, ch=args.ch, img_size=args.img_size, light=variant == "light",
                                           inputs=inputs)
        np.savez(out / variant / "outputs.npz", **results)
        reader = tf.train.load_checkpoint(str(prefix))
        np.savez(out / variant / "tensors.npz", **{name.replace("/", "__SLASH__"): reader.get_tensor(name)
                                                   for name in reader.get_variable_to_shape_map()})
        print(prefix)


if __name__ == "__main__":
    main()
