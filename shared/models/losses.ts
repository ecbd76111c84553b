// Loss terms as pure functions of tensors. Each returns per-image values [n] (or
// their sums) and runs inside tf.tidy, so only its result survives.
import * as tf from '@tensorflow/tfjs';

/** Flattens [n, ...] to [n, rest]. */
function rows(t: tf.Tensor): tf.Tensor2D {
  const n = t.shape[0] as number;
  return t.reshape([n, t.size / n]);
}

/** Per-image sum of squared error over pixels: [n]. */
export function perImageSquaredError(pred: tf.Tensor, target: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.squaredDifference(rows(pred), rows(target)), 1) as tf.Tensor1D);
}

/**
 * Per-image Bernoulli negative log-likelihood from logits, summed over pixels: [n].
 * Binary cross-entropy with logits against intensities x in [0,1], in the form
 * that neither overflows nor loses precision for large |l|:
 *   max(l, 0) - l*x + log(1 + exp(-|l|)).
 */
export function perImageBernoulliNll(logits: tf.Tensor, target: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const l = rows(logits);
    const x = rows(target);
    const elem = tf.relu(l).sub(l.mul(x)).add(tf.log1p(tf.exp(tf.neg(tf.abs(l)))));
    return tf.sum(elem, 1) as tf.Tensor1D;
  });
}

/** Per-image KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)): [n]. */
export function perImageGaussianKl(mu: tf.Tensor, logvar: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const terms = tf.scalar(1).add(logvar).sub(tf.square(mu)).sub(tf.exp(logvar));
    return tf.mul(tf.sum(terms, 1), -0.5) as tf.Tensor1D;
  });
}

/** z = mu + exp(logvar / 2) * eps (eps from noise.ts, so the sample is a pure function of the image). */
export function reparameterize(mu: tf.Tensor, logvar: tf.Tensor, eps: tf.Tensor): tf.Tensor {
  return tf.tidy(() => mu.add(tf.exp(logvar.mul(0.5)).mul(eps)));
}

export interface LossTensors {
  total: tf.Scalar;
  reconstruction: tf.Scalar;
  kl: tf.Scalar;
}

/** ae: per-image sum of squared error on the sigmoid output, summed over the batch. */
export function aeLossSums(pred: tf.Tensor, target: tf.Tensor): LossTensors {
  return tf.tidy(() => {
    const reconstruction = tf.sum(perImageSquaredError(pred, target)) as tf.Scalar;
    return { total: reconstruction.clone(), reconstruction, kl: tf.scalar(0) };
  });
}

/** vae/cvae: negative ELBO = Bernoulli NLL + KL, each summed over the batch. */
export function vaeLossSums(logits: tf.Tensor, target: tf.Tensor, mu: tf.Tensor, logvar: tf.Tensor): LossTensors {
  return tf.tidy(() => {
    const reconstruction = tf.sum(perImageBernoulliNll(logits, target)) as tf.Scalar;
    const kl = tf.sum(perImageGaussianKl(mu, logvar)) as tf.Scalar;
    return { total: reconstruction.add(kl) as tf.Scalar, reconstruction, kl };
  });
}
