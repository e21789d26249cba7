// A small GPT-2-style language model with hand-written forward and backward passes in Eigen.
//
// Activations are row-major [B*T, C] matrices so every linear layer is one GEMM over all
// tokens of the batch; attention runs per (sequence, head). All parameters live in one flat
// buffer and all gradients in another, the way a real trainer hands them to an optimizer.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "rng.hpp"

// Row loops are independent, so they split across threads without changing any result.
#if defined(_OPENMP)
#define TINY_GPT_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#else
#define TINY_GPT_PARALLEL_FOR
#endif

namespace tiny_gpt {

struct GPTConfig {
  int vocab_size = 0;
  int block_size = 64;  // longest context: rows of wpe
  int n_layer = 4;
  int n_head = 4;
  int n_embd = 128;  // D = n_head * head_dim
  bool gelu = true;  // false: ReLU

  int head_dim() const { return n_head > 0 ? n_embd / n_head : 0; }
};

// One parameter tensor: views into the model's flat buffers, PyTorch shape (Linear is out x in).
template <class T>
struct Param {
  std::string name;
  T* w = nullptr;
  T* g = nullptr;
  std::vector<std::size_t> shape;

  std::size_t numel() const {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    return n;
  }
};

template <class T>
class GPT {
 public:
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatMap = Eigen::Map<Mat>;
  using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  using RowMap = Eigen::Map<RowVec>;
  using Index = Eigen::Index;

  explicit GPT(const GPTConfig& cfg, std::uint64_t seed = 1234) : cfg_(cfg) {
    if (cfg.vocab_size <= 0 || cfg.block_size <= 0 || cfg.n_layer <= 0 || cfg.n_head <= 0 || cfg.n_embd <= 0)
      throw std::invalid_argument("GPT: all config sizes must be positive");
    if (cfg.n_embd % cfg.n_head != 0)
      throw std::invalid_argument("GPT: n_embd " + std::to_string(cfg.n_embd) + " is not divisible by n_head " +
                                  std::to_string(cfg.n_head));
    build_parameters();
    init_parameters(seed);
  }

  // Pointers into the flat buffers stay valid for the model's lifetime, so moves are fine
  // (vectors keep their storage) but copies would alias the source's buffers.
  GPT(const GPT&) = delete;
  GPT& operator=(const GPT&) = delete;
  GPT(GPT&&) noexcept = default;
  GPT& operator=(GPT&&) noexcept = default;

  const GPTConfig& config() const { return cfg_; }
  std::vector<Param<T>>& params() { return params_; }
  const std::vector<Param<T>>& params() const { return params_; }
  std::size_t num_parameters() const { return weights_.size(); }
  T* weights() { return weights_.data(); }
  const T* weights() const { return weights_.data(); }
  T* grads() { return grads_.data(); }

  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }

  // Runs B sequences of Tn tokens (row-major [B, Tn]). With targets, returns the mean
  // cross-entropy and keeps what backward() needs; without, only logits are meaningful.
  T forward(const int* inputs, const int* targets, int B, int Tn) {
    if (B <= 0 || Tn <= 0 || Tn > cfg_.block_size)
      throw std::invalid_argument("GPT::forward: need B > 0 and 0 < T <= block_size " + std::to_string(cfg_.block_size));
    resize_activations(B, Tn);
    const Index N = rows();
    inputs_.assign(inputs, inputs + N);
    has_targets_ = targets != nullptr;
    if (has_targets_) targets_.assign(targets, targets + N);
    for (Index i = 0; i < N; ++i) {
      check_token(inputs_[static_cast<std::size_t>(i)]);
      if (has_targets_) check_token(targets_[static_cast<std::size_t>(i)]);
    }

    const MatMap wte = wmat(wte_), wpe = wmat(wpe_);
    for (Index i = 0; i < N; ++i) emb_.row(i) = wte.row(inputs_[static_cast<std::size_t>(i)]) + wpe.row(i % Tn);

    for (int l = 0; l < cfg_.n_layer; ++l) {
      LayerActs& a = acts_[static_cast<std::size_t>(l)];
      const LayerParams& p = layers_[static_cast<std::size_t>(l)];
      const Mat& x = l == 0 ? emb_ : acts_[static_cast<std::size_t>(l) - 1].res_out;

      layernorm_forward(x, p.ln1_w, p.ln1_b, a.ln1, a.ln1_mean, a.ln1_rstd);
      linear_forward(a.ln1, p.attn_w, p.attn_b, a.qkv);
      attention_forward(a.qkv, a.probs, a.atty);
      linear_forward(a.atty, p.attn_proj_w, p.attn_proj_b, a.res_mid);
      a.res_mid += x;

      layernorm_forward(a.res_mid, p.ln2_w, p.ln2_b, a.ln2, a.ln2_mean, a.ln2_rstd);
      linear_forward(a.ln2, p.fc_w, p.fc_b, a.fc_pre);
      activation_forward(a.fc_pre, a.fc_act);
      linear_forward(a.fc_act, p.mlp_proj_w, p.mlp_proj_b, a.res_out);
      a.res_out += a.res_mid;
    }

    layernorm_forward(last_residual(), lnf_w_, lnf_b_, lnf_, lnf_mean_, lnf_rstd_);
    logits_.noalias() = lnf_ * wmat(head_).transpose();
    if (!has_targets_) return T(0);
    return cross_entropy_forward();
  }

  // Accumulates d(mean loss)/d(parameter) into grads() for the last forward() with targets.
  void backward() {
    if (!has_targets_) throw std::logic_error("GPT::backward: the last forward() had no targets");
    const Index N = rows();

    // d loss / d logits = (softmax - onehot) / N, built in place of the probabilities.
    dlogits_ = probs_;
    for (Index i = 0; i < N; ++i) dlogits_(i, targets_[static_cast<std::size_t>(i)]) -= T(1);
    dlogits_ *= T(1) / static_cast<T>(N);

    gmat(head_).noalias() += dlogits_.transpose() * lnf_;
    dln_.noalias() = dlogits_ * wmat(head_);
    dres_.setZero();
    layernorm_backward(dln_, last_residual(), lnf_mean_, lnf_rstd_, lnf_w_, lnf_b_, dres_);

    for (int l = cfg_.n_layer - 1; l >= 0; --l) {
      LayerActs& a = acts_[static_cast<std::size_t>(l)];
      const LayerParams& p = layers_[static_cast<std::size_t>(l)];
      const Mat& x = l == 0 ? emb_ : acts_[static_cast<std::size_t>(l) - 1].res_out;

      // MLP branch; the residual passes dres_ through unchanged.
      linear_backward(dres_, a.fc_act, p.mlp_proj_w, p.mlp_proj_b, dfc_);
      activation_backward(a.fc_pre, dfc_);
      linear_backward(dfc_, a.ln2, p.fc_w, p.fc_b, dln_);
      layernorm_backward(dln_, a.res_mid, a.ln2_mean, a.ln2_rstd, p.ln2_w, p.ln2_b, dres_);

      // Attention branch.
      linear_backward(dres_, a.atty, p.attn_proj_w, p.attn_proj_b, datty_);
      attention_backward(datty_, a.qkv, a.probs, dqkv_);
      linear_backward(dqkv_, a.ln1, p.attn_w, p.attn_b, dln_);
      layernorm_backward(dln_, x, a.ln1_mean, a.ln1_rstd, p.ln1_w, p.ln1_b, dres_);
    }

    MatMap gwte = gmat(wte_), gwpe = gmat(wpe_);
    for (Index i = 0; i < N; ++i) {
      gwte.row(inputs_[static_cast<std::size_t>(i)]) += dres_.row(i);
      gwpe.row(i % Tn_) += dres_.row(i);
    }
  }

  // Logits of token row `row` (= b * T + t) of the last forward().
  const T* logits(Index row) const { return logits_.data() + row * logits_.cols(); }

 private:
  // Indices into params_ of one block's tensors.
  struct LayerParams {
    std::size_t ln1_w, ln1_b, attn_w, attn_b, attn_proj_w, attn_proj_b;
    std::size_t ln2_w, ln2_b, fc_w, fc_b, mlp_proj_w, mlp_proj_b;
  };
  struct LayerActs {
    Mat ln1, qkv, atty, res_mid, ln2, fc_pre, fc_act, res_out;
    std::vector<T> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd;
    std::vector<T> probs;  // [B, n_head, T, T] attention weights, zero above the diagonal
  };

  static constexpr T kLayerNormEps = T(1e-5);

  Index rows() const { return static_cast<Index>(B_) * Tn_; }
  const Mat& last_residual() const { return acts_.back().res_out; }

  void check_token(int t) const {
    if (t < 0 || t >= cfg_.vocab_size)
      throw std::out_of_range("GPT: token " + std::to_string(t) + " outside vocabulary of " +
                              std::to_string(cfg_.vocab_size));
  }

  std::size_t add_param(const std::string& name, std::vector<std::size_t> shape) {
    Param<T> p;
    p.name = name;
    p.shape = std::move(shape);
    offsets_.push_back(total_);
    total_ += p.numel();
    params_.push_back(std::move(p));
    return params_.size() - 1;
  }

  void build_parameters() {
    const auto V = static_cast<std::size_t>(cfg_.vocab_size), D = static_cast<std::size_t>(cfg_.n_embd),
               Tmax = static_cast<std::size_t>(cfg_.block_size);
    wte_ = add_param("wte", {V, D});
    wpe_ = add_param("wpe", {Tmax, D});
    for (int l = 0; l < cfg_.n_layer; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      LayerParams p{};
      p.ln1_w = add_param(h + "ln_1.weight", {D});
      p.ln1_b = add_param(h + "ln_1.bias", {D});
      p.attn_w = add_param(h + "attn.c_attn.weight", {3 * D, D});  // rows: all Q heads, then K, then V
      p.attn_b = add_param(h + "attn.c_attn.bias", {3 * D});
      p.attn_proj_w = add_param(h + "attn.c_proj.weight", {D, D});
      p.attn_proj_b = add_param(h + "attn.c_proj.bias", {D});
      p.ln2_w = add_param(h + "ln_2.weight", {D});
      p.ln2_b = add_param(h + "ln_2.bias", {D});
      p.fc_w = add_param(h + "mlp.c_fc.weight", {4 * D, D});
      p.fc_b = add_param(h + "mlp.c_fc.bias", {4 * D});
      p.mlp_proj_w = add_param(h + "mlp.c_proj.weight", {D, 4 * D});
      p.mlp_proj_b = add_param(h + "mlp.c_proj.bias", {D});
      layers_.push_back(p);
    }
    lnf_w_ = add_param("ln_f.weight", {D});
    lnf_b_ = add_param("ln_f.bias", {D});
    head_ = add_param("lm_head.weight", {V, D});

    weights_.assign(total_, T(0));
    grads_.assign(total_, T(0));
    for (std::size_t i = 0; i < params_.size(); ++i) {
      params_[i].w = weights_.data() + offsets_[i];
      params_[i].g = grads_.data() + offsets_[i];
    }
  }

  // GPT-2 init: N(0, 0.02) for matrices and embeddings, zero biases, unit LayerNorm gains.
  // Projections that write into the residual stream get 0.02/sqrt(2L) so the stream's
  // variance does not grow with depth.
  void init_parameters(std::uint64_t seed) {
    SplitMix64 rng(seed);
    const double resid_std = 0.02 / std::sqrt(2.0 * cfg_.n_layer);
    auto normal_fill = [&](std::size_t i, double stddev) {
      Param<T>& p = params_[i];
      for (std::size_t k = 0; k < p.numel(); ++k) p.w[k] = static_cast<T>(stddev * rng.normal());
    };
    auto const_fill = [&](std::size_t i, T v) { std::fill(params_[i].w, params_[i].w + params_[i].numel(), v); };
    normal_fill(wte_, 0.02);
    normal_fill(wpe_, 0.02);
    for (const LayerParams& p : layers_) {
      const_fill(p.ln1_w, T(1));
      normal_fill(p.attn_w, 0.02);
      normal_fill(p.attn_proj_w, resid_std);
      const_fill(p.ln2_w, T(1));
      normal_fill(p.fc_w, 0.02);
      normal_fill(p.mlp_proj_w, resid_std);
    }
    const_fill(lnf_w_, T(1));
    normal_fill(head_, 0.02);
  }

  MatMap wmat(std::size_t i) { return as_mat(params_[i].w, params_[i].shape); }
  MatMap gmat(std::size_t i) { return as_mat(params_[i].g, params_[i].shape); }
  RowMap wvec(std::size_t i) { return RowMap(params_[i].w, static_cast<Index>(params_[i].numel())); }
  RowMap gvec(std::size_t i) { return RowMap(params_[i].g, static_cast<Index>(params_[i].numel())); }
  static MatMap as_mat(T* p, const std::vector<std::size_t>& s) {
    return MatMap(p, static_cast<Index>(s[0]), static_cast<Index>(s[1]));
  }

  void resize_activations(int B, int Tn) {
    if (B == B_ && Tn == Tn_) return;
    B_ = B;
    Tn_ = Tn;
    const Index N = rows(), D = cfg_.n_embd, V = cfg_.vocab_size;
    const auto n = static_cast<std::size_t>(N);
    acts_.resize(static_cast<std::size_t>(cfg_.n_layer));
    emb_.resize(N, D);
    for (LayerActs& a : acts_) {
      a.ln1.resize(N, D);
      a.qkv.resize(N, 3 * D);
      a.atty.resize(N, D);
      a.res_mid.resize(N, D);
      a.ln2.resize(N, D);
      a.fc_pre.resize(N, 4 * D);
      a.fc_act.resize(N, 4 * D);
      a.res_out.resize(N, D);
      a.ln1_mean.resize(n);
      a.ln1_rstd.resize(n);
      a.ln2_mean.resize(n);
      a.ln2_rstd.resize(n);
      a.probs.resize(static_cast<std::size_t>(B) * static_cast<std::size_t>(cfg_.n_head) * static_cast<std::size_t>(Tn) *
                     static_cast<std::size_t>(Tn));
    }
    lnf_.resize(N, D);
    lnf_mean_.resize(n);
    lnf_rstd_.resize(n);
    logits_.resize(N, V);
    probs_.resize(N, V);
    dlogits_.resize(N, V);
    dres_.resize(N, D);
    dln_.resize(N, D);
    datty_.resize(N, D);
    dqkv_.resize(N, 3 * D);
    dfc_.resize(N, 4 * D);
  }

  // y = x W^T + b, with W stored out x in.
  void linear_forward(const Mat& x, std::size_t w, std::size_t b, Mat& y) {
    y.noalias() = x * wmat(w).transpose();
    y.rowwise() += wvec(b);
  }

  // Given dy, accumulates dW and db and writes dx (overwriting it).
  void linear_backward(const Mat& dy, const Mat& x, std::size_t w, std::size_t b, Mat& dx) {
    gmat(w).noalias() += dy.transpose() * x;
    gvec(b) += dy.colwise().sum();
    dx.noalias() = dy * wmat(w);
  }

  void layernorm_forward(const Mat& x, std::size_t w, std::size_t b, Mat& y, std::vector<T>& mean, std::vector<T>& rstd) {
    const Index N = x.rows(), C = x.cols();
    const T* gain = params_[w].w;
    const T* bias = params_[b].w;
    TINY_GPT_PARALLEL_FOR
    for (Index i = 0; i < N; ++i) {
      const T* xr = x.data() + i * C;
      T* yr = y.data() + i * C;
      T m = 0;
      for (Index c = 0; c < C; ++c) m += xr[c];
      m /= static_cast<T>(C);
      T var = 0;
      for (Index c = 0; c < C; ++c) var += (xr[c] - m) * (xr[c] - m);
      var /= static_cast<T>(C);
      const T rs = T(1) / std::sqrt(var + kLayerNormEps);
      mean[static_cast<std::size_t>(i)] = m;
      rstd[static_cast<std::size_t>(i)] = rs;
      for (Index c = 0; c < C; ++c) yr[c] = (xr[c] - m) * rs * gain[c] + bias[c];
    }
  }

  // With xhat = (x - mean) * rstd and g = dy * gain:
  //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).  Adds dx into `dx_acc`.
  void layernorm_backward(const Mat& dy, const Mat& x, const std::vector<T>& mean, const std::vector<T>& rstd,
                          std::size_t w, std::size_t b, Mat& dx_acc) {
    const Index N = x.rows(), C = x.cols();
    const T* gain = params_[w].w;
    T* dgain = params_[w].g;
    T* dbias = params_[b].g;
    // Gain/bias gradients sum over rows; kept serial so the summation order is fixed.
    for (Index i = 0; i < N; ++i) {
      const T* xr = x.data() + i * C;
      const T* dyr = dy.data() + i * C;
      const T m = mean[static_cast<std::size_t>(i)], rs = rstd[static_cast<std::size_t>(i)];
      for (Index c = 0; c < C; ++c) {
        dgain[c] += dyr[c] * (xr[c] - m) * rs;
        dbias[c] += dyr[c];
      }
    }
    TINY_GPT_PARALLEL_FOR
    for (Index i = 0; i < N; ++i) {
      const T* xr = x.data() + i * C;
      const T* dyr = dy.data() + i * C;
      T* dxr = dx_acc.data() + i * C;
      const T m = mean[static_cast<std::size_t>(i)], rs = rstd[static_cast<std::size_t>(i)];
      T mean_g = 0, mean_gx = 0;
      for (Index c = 0; c < C; ++c) {
        const T g = dyr[c] * gain[c];
        mean_g += g;
        mean_gx += g * (xr[c] - m) * rs;
      }
      mean_g /= static_cast<T>(C);
      mean_gx /= static_cast<T>(C);
      for (Index c = 0; c < C; ++c) {
        const T xhat = (xr[c] - m) * rs;
        dxr[c] += rs * (dyr[c] * gain[c] - mean_g - xhat * mean_gx);
      }
    }
  }

  // GELU, tanh approximation: 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi).
  static constexpr T kGeluK = T(0.7978845608028654);
  static constexpr T kGeluC = T(0.044715);

  void activation_forward(const Mat& pre, Mat& out) const {
    const auto x = pre.array();
    if (cfg_.gelu)
      out.array() = T(0.5) * x * (T(1) + (kGeluK * (x + kGeluC * x.cube())).tanh());
    else
      out.array() = x.max(T(0));
  }

  // d(pre) = d(out) * act'(pre), in place.
  void activation_backward(const Mat& pre, Mat& d) const {
    const auto x = pre.array();
    if (cfg_.gelu) {
      const auto t = (kGeluK * (x + kGeluC * x.cube())).tanh().eval();
      d.array() *= T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t.square()) * kGeluK * (T(1) + T(3) * kGeluC * x.square());
    } else {
      d.array() *= (x > T(0)).template cast<T>();
    }
  }

  // qkv columns: [Q heads | K heads | V heads], head h at columns h*hd .. h*hd+hd-1 of each.
  void attention_forward(const Mat& qkv, std::vector<T>& probs, Mat& out) {
    const int nh = cfg_.n_head, Tn = Tn_;
    const Index D = cfg_.n_embd, hd = cfg_.head_dim();
    const T scale = T(1) / std::sqrt(static_cast<T>(hd));
    TINY_GPT_PARALLEL_FOR
    for (int bh = 0; bh < B_ * nh; ++bh) {
      const Index r0 = static_cast<Index>(bh / nh) * Tn, h = bh % nh;
      const auto q = qkv.block(r0, h * hd, Tn, hd);
      const auto k = qkv.block(r0, D + h * hd, Tn, hd);
      const auto v = qkv.block(r0, 2 * D + h * hd, Tn, hd);
      MatMap P(probs.data() + static_cast<std::size_t>(bh) * static_cast<std::size_t>(Tn * Tn), Tn, Tn);
      P.noalias() = q * k.transpose();
      for (Index i = 0; i < Tn; ++i) {
        T* row = P.data() + i * Tn;
        T mx = row[0] * scale;
        for (Index j = 1; j <= i; ++j) mx = std::max(mx, row[j] * scale);
        T sum = 0;
        for (Index j = 0; j <= i; ++j) {
          row[j] = std::exp(row[j] * scale - mx);
          sum += row[j];
        }
        const T inv = T(1) / sum;
        for (Index j = 0; j <= i; ++j) row[j] *= inv;
        for (Index j = i + 1; j < Tn; ++j) row[j] = T(0);  // causal: no weight on later tokens
      }
      out.block(r0, h * hd, Tn, hd).noalias() = P * v;
    }
  }

  // With S = scale * Q K^T and P = softmax(S) row-wise: dV = P^T dY, dP = dY V^T,
  // dS = P o (dP - rowsum(dP o P)), dQ = scale dS K, dK = scale dS^T Q. Masked P are 0, so dS is too.
  void attention_backward(const Mat& dout, const Mat& qkv, const std::vector<T>& probs, Mat& dqkv) {
    const int nh = cfg_.n_head, Tn = Tn_;
    const Index D = cfg_.n_embd, hd = cfg_.head_dim();
    const T scale = T(1) / std::sqrt(static_cast<T>(hd));
    TINY_GPT_PARALLEL_FOR
    for (int bh = 0; bh < B_ * nh; ++bh) {
      const Index r0 = static_cast<Index>(bh / nh) * Tn, h = bh % nh;
      const auto q = qkv.block(r0, h * hd, Tn, hd);
      const auto k = qkv.block(r0, D + h * hd, Tn, hd);
      const auto v = qkv.block(r0, 2 * D + h * hd, Tn, hd);
      const auto dy = dout.block(r0, h * hd, Tn, hd);
      const Eigen::Map<const Mat> P(probs.data() + static_cast<std::size_t>(bh) * static_cast<std::size_t>(Tn * Tn), Tn, Tn);
      Mat dS = dy * v.transpose();
      dqkv.block(r0, 2 * D + h * hd, Tn, hd).noalias() = P.transpose() * dy;
      for (Index i = 0; i < Tn; ++i) {
        T* ds = dS.data() + i * Tn;
        const T* p = P.data() + i * Tn;
        T dot = 0;
        for (Index j = 0; j <= i; ++j) dot += ds[j] * p[j];
        for (Index j = 0; j <= i; ++j) ds[j] = scale * p[j] * (ds[j] - dot);
        for (Index j = i + 1; j < Tn; ++j) ds[j] = T(0);
      }
      dqkv.block(r0, h * hd, Tn, hd).noalias() = dS * k;
      dqkv.block(r0, D + h * hd, Tn, hd).noalias() = dS.transpose() * q;
    }
  }

  T cross_entropy_forward() {
    const Index N = rows(), V = cfg_.vocab_size;
    std::vector<double> row_loss(static_cast<std::size_t>(N));
    TINY_GPT_PARALLEL_FOR
    for (Index i = 0; i < N; ++i) {
      const T* z = logits_.data() + i * V;
      T* p = probs_.data() + i * V;
      T mx = z[0];
      for (Index j = 1; j < V; ++j) mx = std::max(mx, z[j]);
      T sum = 0;
      for (Index j = 0; j < V; ++j) {
        p[j] = std::exp(z[j] - mx);
        sum += p[j];
      }
      const T inv = T(1) / sum;
      for (Index j = 0; j < V; ++j) p[j] *= inv;
      const int y = targets_[static_cast<std::size_t>(i)];
      row_loss[static_cast<std::size_t>(i)] = static_cast<double>(std::log(sum) + mx - z[y]);
    }
    double total = 0;
    for (double x : row_loss) total += x;
    return static_cast<T>(total / static_cast<double>(N));
  }

  GPTConfig cfg_;
  std::vector<Param<T>> params_;
  std::vector<std::size_t> offsets_;
  std::size_t total_ = 0;
  std::vector<T> weights_, grads_;
  std::size_t wte_ = 0, wpe_ = 0, lnf_w_ = 0, lnf_b_ = 0, head_ = 0;
  std::vector<LayerParams> layers_;

  int B_ = 0, Tn_ = 0;
  std::vector<int> inputs_, targets_;
  bool has_targets_ = false;
  Mat emb_, lnf_, logits_, probs_;
  std::vector<T> lnf_mean_, lnf_rstd_;
  std::vector<LayerActs> acts_;
  Mat dlogits_, dres_, dln_, datty_, dqkv_, dfc_;
};

}  // namespace tiny_gpt
