#pragma once
// Independent scalar references for every dualopt optimizer, written from
// /work/shared/ALGORITHMS.md alone: plain loops over row-major std::vector<double>, sharing no
// code with the library (own Newton-Schulz, own Jacobi eigensolver, own Gram-Schmidt QR).
// Each reference step takes the already-scheduled learning rate eta and updates W in place.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

namespace ref {

using Vec = std::vector<double>;

// Shape as the trainer stores it: {n} is an n x 1 column, {..., r, c} stacks r x c matrices.
struct Dims {
  std::size_t batch = 1, rows = 1, cols = 1;
  std::size_t per() const { return rows * cols; }
  std::size_t numel() const { return batch * rows * cols; }
};
inline Dims dims_of(const std::vector<std::size_t>& d) {
  Dims x;
  if (d.size() == 1) {
    x.rows = d[0];
    return x;
  }
  x.rows = d[d.size() - 2];
  x.cols = d.back();
  for (std::size_t i = 0; i + 2 < d.size(); ++i) x.batch *= d[i];
  return x;
}

// ---------------------------------------------------------------- learning-rate schedules

// The lr factor after k completed steps (k from 0, so a warmup's first factor is 0), written from
// the documented semantics of dualopt::Schedule (README, schedule.hpp's comments), not its code:
// warmup 0 -> 1 over `warmup` steps; then linear to `final` at `total`, or cosine to `final` at
// `total`, or flat until `total - cooldown` and linear to `final` at `total` (WSD); `final` after.
struct ScheduleRef {
  enum Kind { Constant, Linear, Cosine, Wsd } kind = Constant;
  long warmup = 0, total = 0, cooldown = 0;
  double final = 1.0;

  static ScheduleRef constant() { return {}; }
  static ScheduleRef linear(long w, long t, double f) { return {Linear, w, t, 0, f}; }
  static ScheduleRef cosine(long w, long t, double f) { return {Cosine, w, t, 0, f}; }
  static ScheduleRef wsd(long w, long t, long cd, double f) { return {Wsd, w, t, cd, f}; }

  double operator()(long k) const {
    if (kind == Constant) return 1.0;
    if (k < warmup) return interpolate(k, 0, 0.0, warmup, 1.0);
    if (k >= total) return final;
    switch (kind) {
      case Linear: return interpolate(k, warmup, 1.0, total, final);
      case Cosine: {
        const double pi = std::acos(-1.0), progress = double(k - warmup) / double(total - warmup);
        return final + (1.0 - final) * (std::cos(pi * progress) + 1.0) / 2.0;
      }
      case Wsd: return k <= total - cooldown ? 1.0 : interpolate(k, total - cooldown, 1.0, total, final);
      default: return 1.0;
    }
  }
  // The straight line through (k0, y0) and (k1, y1), at k.
  static double interpolate(long k, long k0, double y0, long k1, double y1) {
    return y0 + (y1 - y0) * double(k - k0) / double(k1 - k0);
  }
};

// ---------------------------------------------------------------- dense helpers (row-major)

// (n x k) times (k x m)
inline Vec matmul(const Vec& a, const Vec& b, std::size_t n, std::size_t k, std::size_t m) {
  Vec out(n * m, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < k; ++p) {
      const double aip = a[i * k + p];
      for (std::size_t j = 0; j < m; ++j) out[i * m + j] += aip * b[p * m + j];
    }
  return out;
}
inline Vec transpose(const Vec& a, std::size_t r, std::size_t c) {
  Vec out(r * c);
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t j = 0; j < c; ++j) out[j * r + i] = a[i * c + j];
  return out;
}
inline double fro(const double* a, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += a[i] * a[i];
  return std::sqrt(s);
}
inline double fro(const Vec& a) { return fro(a.data(), a.size()); }
inline Vec identity(std::size_t n) {
  Vec q(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) q[i * n + i] = 1.0;
  return q;
}

// Newton-Schulz as ALGORITHMS.md states it: X = M / (||M||_F + eps), transposed first when tall,
// `quintic` steps of (3.4445, -4.7750, 2.0315) then `cubic` steps of (1.5, -0.5, 0), each
// A = X X^T, B = b A + c A A, X = a X + B X; transposed back.
inline Vec newton_schulz(Vec x, std::size_t r, std::size_t c, int quintic, int cubic, double eps = 1e-7) {
  const double n = fro(x);
  for (double& e : x) e /= (n + eps);
  const bool tall = r > c;
  if (tall) {
    x = transpose(x, r, c);
    std::swap(r, c);
  }
  auto step = [&](double a, double b, double cc) {
    const Vec gram = matmul(x, transpose(x, r, c), r, c, r);
    const Vec gram2 = matmul(gram, gram, r, r, r);
    Vec poly(r * r);
    for (std::size_t i = 0; i < poly.size(); ++i) poly[i] = b * gram[i] + cc * gram2[i];
    const Vec px = matmul(poly, x, r, r, c);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = a * x[i] + px[i];
  };
  for (int i = 0; i < quintic; ++i) step(3.4445, -4.7750, 2.0315);
  for (int i = 0; i < cubic; ++i) step(1.5, -0.5, 0.0);
  if (tall) x = transpose(x, r, c);
  return x;
}

// Symmetric eigendecomposition by cyclic Jacobi rotations. Returns eigenvalues; V's columns
// (row-major n x n) are the eigenvectors, in no particular order.
inline Vec jacobi_eigen(Vec a, std::size_t n, Vec& v) {
  v = identity(n);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, total = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        total += a[i * n + j] * a[i * n + j];
        if (i != j) off += a[i * n + j] * a[i * n + j];
      }
    if (off <= 1e-30 * total) break;
    for (std::size_t p = 0; p + 1 < n; ++p)
      for (std::size_t q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0.0) continue;
        // Rotation J (c, s; -s, c) in the (p, q) plane with tan = t chosen to zero A'_pq.
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (std::size_t k = 0; k < n; ++k) {  // A J
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (std::size_t k = 0; k < n; ++k) {  // J^T (A J)
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (std::size_t k = 0; k < n; ++k) {  // V J
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  Vec w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = a[i * n + i];
  return w;
}

// Q of A = Q R by Gram-Schmidt with one re-orthogonalization pass (so Q stays orthogonal to
// rounding even when A is ill-conditioned). R's diagonal is positive here, unlike Householder
// QR, so column signs can differ from the library's: the SOAP comparison relies on sign invariance.
inline Vec gram_schmidt_q(const Vec& a, std::size_t n) {
  Vec q(n * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    Vec col(n);
    for (std::size_t i = 0; i < n; ++i) col[i] = a[i * n + j];
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t k = 0; k < j; ++k) {
        double d = 0;
        for (std::size_t i = 0; i < n; ++i) d += q[i * n + k] * col[i];
        for (std::size_t i = 0; i < n; ++i) col[i] -= d * q[i * n + k];
      }
    const double nrm = fro(col);
    for (std::size_t i = 0; i < n; ++i) q[i * n + j] = col[i] / nrm;
  }
  return q;
}

// ---------------------------------------------------------------- norms (dual maps)

struct NormRef {
  enum Kind { Null, L2, Linf, Spectral, RowL2, HeadWise } kind = Null;
  int ns_steps = 5;    // Spectral: quintic steps, Frobenius pre-scale, then sqrt(max(1, r/c))
  std::size_t blocks = 1;  // HeadWise: row blocks
  std::shared_ptr<NormRef> inner;

  static NormRef null() { return {}; }
  static NormRef l2() { return make(L2); }
  static NormRef linf() { return make(Linf); }
  static NormRef rowwise_l2() { return make(RowL2); }
  static NormRef spectral(int steps) {
    NormRef n = make(Spectral);
    n.ns_steps = steps;
    return n;
  }
  static NormRef headwise(NormRef in, std::size_t b) {
    NormRef n = make(HeadWise);
    n.blocks = b;
    n.inner = std::make_shared<NormRef>(std::move(in));
    return n;
  }
  static NormRef make(Kind k) {
    NormRef n;
    n.kind = k;
    return n;
  }
};

inline void dualize(double* d, std::size_t r, std::size_t c, const NormRef& n) {
  const std::size_t len = r * c;
  switch (n.kind) {
    case NormRef::Null: return;
    case NormRef::L2: {
      const double f = fro(d, len);
      if (f > 0)
        for (std::size_t i = 0; i < len; ++i) d[i] /= f;
      return;
    }
    case NormRef::Linf:
      for (std::size_t i = 0; i < len; ++i) d[i] = d[i] > 0 ? 1.0 : (d[i] < 0 ? -1.0 : 0.0);
      return;
    case NormRef::RowL2:
      for (std::size_t i = 0; i < r; ++i) {
        const double f = fro(d + i * c, c);
        if (f > 0)
          for (std::size_t j = 0; j < c; ++j) d[i * c + j] /= f;
      }
      return;
    case NormRef::Spectral: {
      Vec x = newton_schulz(Vec(d, d + len), r, c, n.ns_steps, 0);
      const double scale = std::sqrt(std::max(1.0, double(r) / double(c)));
      for (std::size_t i = 0; i < len; ++i) d[i] = x[i] * scale;
      return;
    }
    case NormRef::HeadWise: {
      const std::size_t br = r / n.blocks;
      for (std::size_t b = 0; b < n.blocks; ++b) dualize(d + b * br * c, br, c, *n.inner);
      return;
    }
  }
}

// ---------------------------------------------------------------- wrappers

// Offset momentum on the lr-scaled update: O = b O + (1-b) u; u <- u + O.
struct Offset {
  double beta = 0;
  Vec o;
  void apply(Vec& u) {
    if (beta == 0) return;
    if (o.empty()) o.assign(u.size(), 0.0);
    for (std::size_t i = 0; i < u.size(); ++i) {
      o[i] = beta * o[i] + (1 - beta) * u[i];
      u[i] += o[i];
    }
  }
};

// Decoupled decay W (1 - eta wd), before the update (AdamW, Muon, Mango) or after (SOAP-Muon).
inline void apply_update(Vec& w, const Vec& u, double eta, double wd, bool decay_after) {
  const double f = 1 - eta * wd;
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = decay_after ? (w[i] - u[i]) * f : w[i] * f - u[i];
}

// ---------------------------------------------------------------- optimizers

struct AdamRef {
  double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0;
  Offset offset;
  Vec m, v;
  long t = 0;
  void step(Vec& w, const Vec& g, double eta) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
    Vec u(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      u[i] = eta * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    }
    offset.apply(u);
    apply_update(w, u, eta, wd, false);
  }
};

struct LaPropRef {
  double b1 = 0.8, b2 = 0.99, eps = 1e-15, wd = 0;
  Offset offset;
  Vec m, v;
  long t = 0;
  void step(Vec& w, const Vec& g, double eta) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
    Vec u(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i] / (std::sqrt(v[i] / bc2) + eps);
      u[i] = eta * m[i] / bc1;
    }
    offset.apply(u);
    apply_update(w, u, eta, wd, false);
  }
};

// Muon: B = b B + (1-b) G; U = nesterov ? (1-b) G + b B : B; O = NS(U) sqrt(max(1, r/c)).
// `norm` defaults to the spectral map with ns_steps; each stacked matrix is its own NS input.
struct MuonRef {
  Dims dims;
  double beta = 0.95, wd = 0;
  bool nesterov = true;
  NormRef norm = NormRef::spectral(5);
  Offset offset;
  Vec buf;
  void step(Vec& w, const Vec& g, double eta) {
    if (buf.empty()) buf.assign(w.size(), 0.0);
    Vec u(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      buf[i] = beta * buf[i] + (1 - beta) * g[i];
      u[i] = nesterov ? (1 - beta) * g[i] + beta * buf[i] : buf[i];
    }
    for (std::size_t b = 0; b < dims.batch; ++b) dualize(u.data() + b * dims.per(), dims.rows, dims.cols, norm);
    for (double& x : u) x *= eta;
    offset.apply(u);
    apply_update(w, u, eta, wd, false);
  }
};

// Mango, reference form: v = b2 v + G^2; P = G / (sqrt(v) + eps); m = b1 m + P;
// D = nesterov ? P + b1 m : m. The note's EMA form puts (1-b2) on G^2 and (1-b1) on P
// (Nesterov then (1-b1) P + b1 m, as Muon writes it). Then the tensor's norm, lr, offset.
struct MangoRef {
  Dims dims;
  double b1 = 0.95, b2 = 0.95, eps = 1e-8, wd = 0;
  bool nesterov = true, ema = false;
  NormRef norm;
  Offset offset{0.99, {}};
  Vec m, v;
  void step(Vec& w, const Vec& g, double eta) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    const double gw = ema ? 1 - b2 : 1.0, pw = ema ? 1 - b1 : 1.0;
    Vec u(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      v[i] = b2 * v[i] + gw * g[i] * g[i];
      const double p = g[i] / (std::sqrt(v[i]) + eps);
      m[i] = b1 * m[i] + pw * p;
      u[i] = nesterov ? pw * p + b1 * m[i] : m[i];
    }
    for (std::size_t b = 0; b < dims.batch; ++b) dualize(u.data() + b * dims.per(), dims.rows, dims.cols, norm);
    for (double& x : u) x *= eta;
    offset.apply(u);
    apply_update(w, u, eta, wd, false);
  }
};

// SOAP-Muon with sqrt correction, one stacked matrix at a time (see ALGORITHMS.md).
struct SoapRef {
  Dims dims;
  double b1 = 0.95, b2 = 0.98, b_sh = -1, eps = 1e-15, wd = 0;
  bool nesterov = false, sqrt_correction = true;
  int freq = 10, quintic = 5, cubic = 2;
  std::size_t max_precond_dim = 10000;
  Offset offset;
  // Flip the signs of random basis columns after every eigensolve / QR: the update must not care.
  bool random_signs = true;
  std::mt19937 sign_rng{12345};

  struct Slice {
    Vec m, v, l, q;
  };
  std::vector<Slice> s;
  long calls = 0, k = 0;  // k counts real updates (every call but the first)

  std::size_t side() const { return std::min(dims.rows, dims.cols); }
  bool left() const { return dims.rows < dims.cols; }
  bool rotates() const { return std::max(dims.rows, dims.cols) < max_precond_dim; }

  // G G^T (left, r x r) or G^T G (right, c x c)
  Vec outer(const double* g) const {
    const std::size_t r = dims.rows, c = dims.cols;
    Vec gm(g, g + r * c);
    return left() ? matmul(gm, transpose(gm, r, c), r, c, r) : matmul(transpose(gm, r, c), gm, c, r, c);
  }
  void flip_signs(Vec& q) {
    const std::size_t n = side();
    for (std::size_t j = 0; j < n; ++j)
      if (random_signs && (sign_rng() & 1u))
        for (std::size_t i = 0; i < n; ++i) q[i * n + j] = -q[i * n + j];
  }
  // Eigenvectors of L, columns by descending eigenvalue.
  Vec eig_desc(const Vec& l) {
    const std::size_t n = side();
    Vec vecs;
    const Vec w = jacobi_eigen(l, n, vecs);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return w[a] > w[b]; });
    Vec q(n * n);
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t i = 0; i < n; ++i) q[i * n + j] = vecs[i * n + order[j]];
    flip_signs(q);
    return q;
  }
  // left: Q^T X; right: X Q
  Vec project(const Vec& x, const Vec& q) const {
    const std::size_t r = dims.rows, c = dims.cols, n = side();
    return left() ? matmul(transpose(q, n, n), x, n, n, c) : matmul(x, q, r, n, n);
  }
  // left: Q X; right: X Q^T
  Vec project_back(const Vec& x, const Vec& q) const {
    const std::size_t r = dims.rows, c = dims.cols, n = side();
    return left() ? matmul(q, x, n, n, c) : matmul(x, transpose(q, n, n), r, n, n);
  }

  void step(Vec& w, const Vec& g, double eta) {
    const std::size_t per = dims.per(), n = side(), r = dims.rows, c = dims.cols;
    const double bsh = b_sh < 0 ? b2 : b_sh;
    if (s.empty()) s.resize(dims.batch);
    ++calls;
    if (calls == 1) {  // the first call only builds the basis
      for (std::size_t b = 0; b < dims.batch; ++b) {
        s[b].m.assign(per, 0.0);
        s[b].v.assign(per, 0.0);
        if (!rotates()) continue;
        s[b].l = outer(g.data() + b * per);
        for (double& x : s[b].l) x *= (1 - bsh);
        s[b].q = eig_desc(s[b].l);
      }
      return;
    }
    ++k;
    Vec u(w.size());
    for (std::size_t b = 0; b < dims.batch; ++b) {
      Slice& st = s[b];
      const Vec gb(g.begin() + long(b * per), g.begin() + long((b + 1) * per));
      const Vec gp = rotates() ? project(gb, st.q) : gb;
      for (std::size_t i = 0; i < per; ++i) {
        st.m[i] = b1 * st.m[i] + (1 - b1) * gb[i];
        st.v[i] = b2 * st.v[i] + (1 - b2) * gp[i] * gp[i];
      }
      Vec x = rotates() ? project(st.m, st.q) : st.m;
      for (std::size_t i = 0; i < per; ++i) {
        if (nesterov) x[i] += (1 - b1) * gp[i];
        x[i] /= std::sqrt(st.v[i]) + eps;
      }
      if (rotates()) x = newton_schulz(x, r, c, quintic, cubic);
      if (sqrt_correction)
        for (double& e : x) e = (e > 0 ? 1.0 : (e < 0 ? -1.0 : 0.0)) * std::sqrt(std::abs(e));
      const double target =
          rotates() ? std::sqrt(double(n)) * std::sqrt(std::max(1.0, double(r) / double(c))) : std::sqrt(double(r * c));
      const double f = fro(x);
      if (f > 0)
        for (double& e : x) e *= target / f;
      if (rotates()) x = project_back(x, st.q);
      const double step = eta * std::sqrt(1 - std::pow(b2, double(k))) / (1 - std::pow(b1, double(k)));
      for (std::size_t i = 0; i < per; ++i) u[b * per + i] = step * x[i];

      if (!rotates()) continue;
      const Vec gg = outer(gb.data());
      for (std::size_t i = 0; i < st.l.size(); ++i) st.l[i] = bsh * st.l[i] + (1 - bsh) * gg[i];
      if (k % freq == 0) refresh(st);
    }
    offset.apply(u);
    apply_update(w, u, eta, wd, true);
  }

  // est = diag(Q^T L Q); sort descending; permute Q's columns and v's rotated axis alike;
  // Q = qr(L Q).Q.
  void refresh(Slice& st) {
    const std::size_t n = side(), r = dims.rows, c = dims.cols;
    const Vec lq = matmul(st.l, st.q, n, n, n);
    Vec est(n, 0.0);
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t i = 0; i < n; ++i) est[j] += st.q[i * n + j] * lq[i * n + j];
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return est[a] > est[b]; });
    Vec qp(n * n), vp(st.v.size());
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t i = 0; i < n; ++i) qp[i * n + j] = st.q[i * n + order[j]];
    if (left()) {  // rotated axis = rows of v
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < c; ++j) vp[i * c + j] = st.v[order[i] * c + j];
    } else {       // rotated axis = columns of v
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < n; ++j) vp[i * n + j] = st.v[i * n + order[j]];
    }
    st.v = vp;
    st.q = gram_schmidt_q(matmul(st.l, qp, n, n, n), n);
    flip_signs(st.q);
  }
};

}  // namespace ref
