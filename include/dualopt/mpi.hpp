#pragma once
// Data-parallel training over MPI with sharded optimizer state (ZeRO stage 1): the only dualopt
// header that includes <mpi.h>.
//
//   dualopt::mpi::Sharded<dualopt::Mango<float>> opt(MPI_COMM_WORLD, config);
//   opt.add(...);             // on every rank: the same calls, in the same order, as the plain optimizer
//   opt.step();               // collective: gradients averaged, each rank updates its part, parameters shared
//
// Each rank updates only the pieces it owns (mpi/layout.hpp), in a private optimizer of the same
// type and config that holds the state of those pieces alone. A step:
//  1. all-to-all of gradient pieces to their owners; each owner sums the N copies in rank order
//     and divides by N (MPI's own reductions do not fix their order): the result is bitwise that of
//     one process given the rank-ordered mean, at any N;
//  2. the non-finite check of the summed gradients, agreed by an all-reduce of per-tensor flags,
//     so every rank applies the policy identically before anything is written; with
//     clip_global_norm set on settings(), the norm from every owner's sums of squares, the same
//     bits on every rank (mpi/step.hpp, apply_clip), and the owned gradients scaled by its factor;
//  3. the owned pieces' step;
//  4. all-gather of the owned parameters, so every rank ends with the same parameters.
// The exchanges of 1 and 4 send from and receive into the trainer's buffers through MPI derived
// datatypes (mpi/exchange.hpp), or pack into a buffer of our own (set_exchange).
// The first step (or save/load) checks collectively that every rank registered the same setup.
#include "dualopt.hpp"
#include "mpi/exchange.hpp"
#include "mpi/layout.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace dualopt::mpi {

template <class T>
MPI_Datatype datatype() {
  return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

namespace detail {
// Counters and removal a wrapper needs from an optimizer (protected members of Optimizer).
template <class Opt>
struct Local final : Opt {
  using Opt::Opt;
  void drop_last() {
    auto& s = this->mutable_tensors();
    this->group(s.back().group).remove_last_state();
    s.pop_back();
  }
  void set_counts(std::int64_t steps, const std::vector<std::int64_t>& t) {
    this->set_step_count(steps);
    for (std::size_t i = 0; i < t.size(); ++i) this->mutable_tensors()[i].t = t[i];
  }
};

// Copies every hyperparameter and the schedules of `from` into `to` (same optimizer type).
template <class T>
void copy_settings(Optimizer<T>& from, Optimizer<T>& to) {
  for (std::size_t g = 0; g < from.group_count(); ++g) {
    std::vector<HyperparameterRef> dst;
    to.group(g).for_each_hyperparameter([&](const char*, HyperparameterRef r) { dst.push_back(r); });
    std::size_t k = 0;
    from.group(g).for_each_hyperparameter([&](const char*, HyperparameterRef r) {
      std::visit([&](auto* src) { *std::get<decltype(src)>(dst[k]) = *src; }, r);
      ++k;
    });
  }
  to.set_schedule(from.schedule());
  for (std::size_t g = 0; g < from.group_count(); ++g)
    from.has_own_schedule(g) ? to.set_schedule(g, from.schedule(g)) : to.clear_schedule(g);
  // The clip is not copied: Sharded applies settings()'s over every rank's pieces (mpi/step.hpp).
}
}  // namespace detail

template <class Opt>
class Sharded {
 public:
  using T = typename Opt::Scalar;
  using Local = detail::Local<Opt>;

  // `args` are the plain optimizer's constructor arguments (configs). The communicator is
  // duplicated, so these collectives never match the trainer's own messages.
  template <class... A>
  explicit Sharded(MPI_Comm comm, const A&... args)
      : make_([args...] { return std::make_unique<Local>(args...); }), settings_(make_()), inner_(make_()) {
    MPI_Comm_dup(comm, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  Sharded(const Sharded&) = delete;
  Sharded& operator=(const Sharded&) = delete;
  ~Sharded() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  // Registration: the plain optimizer's own overloads, forwarded (checked there on the whole tensor).
  template <class... A>
  void add(A&&... a) {
    enroll([&](Local& o) { o.add(std::forward<A>(a)...); });
  }
  template <class... A>
  void add_adamw(A&&... a) {
    enroll([&](Local& o) { o.add_adamw(std::forward<A>(a)...); });
  }
  template <class... A>
  void add_to_group(A&&... a) {
    enroll([&](Local& o) { o.add_to_group(std::forward<A>(a)...); });
  }

  // The configs, schedule, non-finite policy and threads, set as on the plain optimizer
  // (settings().config().lr = ...); they must agree on every rank. It holds no tensors.
  Opt& settings() { return *settings_; }
  // The gradients each rank passes are already the mean over ranks (the trainer reduced them).
  void set_gradients_averaged(bool yes) { averaged_ = yes; }
  // How steps exchange gradients and parameters (mpi/exchange.hpp); the same bits either way.
  // Datatypes (the default) copies nothing on our side; Packed needs one more buffer of every
  // parameter, allocated here or by the first step. Must be the same on every rank. A plan whose
  // share of one rank exceeds 2^31 - 1 bytes (an MPI datatype's int size) always runs Packed.
  void set_exchange(Exchange e) {
    exchange_ = e;
    if (ready_) allocate_send();
  }
  Exchange exchange() const { return exchange_; }

  void step() { step_where(nullptr); }
  void step(const std::function<bool(const std::string&)>& which) { step_where(&which); }

  std::int64_t step_count() const { return inner_->step_count(); }
  // settings().clip_global_norm(max, groups) clips as the plain optimizer does, the norm taken over
  // every rank's pieces; the last step's norm (NaN without clipping) and factor, the same on every rank.
  double clip_norm() const { return clip_norm_; }
  double clip_factor() const { return clip_factor_; }
  const std::vector<std::string>& skipped_tensors() const { return skipped_; }
  // This rank's share of the optimizer state, and the owned pieces (after the first step).
  std::size_t state_bytes() { return inner_->state_bytes(); }
  const std::vector<Piece>& pieces() const { return pieces_; }
  Opt& local() { return *inner_; }
  MPI_Comm communicator() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Buffers of the exchange (gradients in, parameters out), reused every step.
  std::size_t exchange_bytes() const { return (send_.capacity() + recv_.capacity() + sum_.capacity()) * sizeof(T); }

  // Checkpoints (mpi/checkpoint.hpp): one file in the plain format, written by rank 0 and
  // readable at any world size and by a plain optimizer; or one file per rank (same N only).
  void save(const std::string& path);
  void load(const std::string& path);
  void save_shards(const std::string& prefix);
  void load_shards(const std::string& prefix);

  // Collective: the plan and this rank's private optimizer; called by the first step, save or load.
  void prepare();

 private:
  struct Record {
    std::string name;
    T* param;
    T* grad;
    Shape shape;
    norms::Norm norm;
    std::size_t group;
    bool elementwise;
  };
  struct Copy {  // len values between a trainer buffer and an exchange buffer position
    T* at;
    std::size_t len, pos;
  };

  template <class F>
  void enroll(F&& f) {
    if (ready_) throw Error("dualopt: register every tensor before the first step of a sharded optimizer");
    f(*settings_);  // every check of the plain optimizer, on the whole tensor
    const TensorSlot<T>& s = settings_->tensors().back();
    Record r{s.name, s.param, s.grad, s.shape, s.norm, s.group, settings_->group(s.group).elementwise()};
    const bool bf16 = s.bf16.any();
    settings_->drop_last();  // its state would be the whole tensor's
    if (bf16) throw tensor_error(r.name, "bf16 storage is not sharded yet: register float buffers");
    for (const auto& o : records_) {
      if (o.name == r.name) throw tensor_error(r.name, "already registered (names key checkpoints, so they must be unique)");
      const std::size_t n = r.shape.numel(), m = o.shape.numel();
      for (const T* mine : {r.param, r.grad})
        for (const T* theirs : {o.param, o.grad})
          if (dualopt::detail::overlaps(mine, n, theirs, m))
            throw tensor_error(r.name, "buffer overlaps the buffers of tensor '" + o.name + "'");
    }
    records_.push_back(std::move(r));
  }

  void check_agreement();
  void register_pieces(Local& o);
  void step_where(const std::function<bool(const std::string&)>* which);
  void apply_clip(const Clip& clip);
  void build_datatypes();
  bool packed() const { return exchange_ == Exchange::Packed || !types_fit_; }
  void allocate_send() {
    const auto total = std::size_t(displs_.back() + counts_.back());
    if (packed() && send_.size() != total) send_.assign(total, T(0));
  }
  [[noreturn]] void fail_everywhere(const std::string& message) { throw Error(message); }
  // Same outcome on every rank: throws, everywhere, the message of the lowest rank that failed.
  void agree(bool ok, std::string message);

  std::function<std::unique_ptr<Local>()> make_;
  std::unique_ptr<Local> settings_, inner_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool ready_ = false, averaged_ = false;
  Exchange exchange_ = Exchange::Datatypes;
  bool types_fit_ = true;  // every rank's share within an MPI datatype's int byte size
  std::vector<Record> records_;
  std::vector<Piece> pieces_;       // all ranks' pieces, by (tensor, begin)
  std::vector<std::size_t> mine_;   // indices into pieces_ of this rank's, in inner_'s order
  std::vector<std::size_t> mine_pos_;  // each one's position in sum_
  std::vector<int> counts_, displs_;   // elements owned per rank, and where they start in send_
  std::vector<int> rcounts_, rdispls_;  // this rank's share from each rank, in recv_
  std::vector<Copy> pack_grad_, unpack_param_;  // all pieces: trainer gradient -> send_; send_ -> trainer parameter
  std::unordered_map<std::string, std::size_t> piece_tensor_;  // inner name -> tensor
  std::vector<T> send_, recv_, sum_;  // send_: Packed only
  // Exchange::Datatypes: gradients trainer -> recv_, parameters trainer <-> trainer.
  detail::Side grad_send_, grad_recv_, param_send_, param_recv_;
  std::vector<int> flags_;
  std::vector<double> piece_squares_;  // the clip's sum of squares per piece, by index in pieces_
  double clip_norm_ = StepReport::kNotMeasured, clip_factor_ = 1.0;
  std::vector<char> chosen_;
  std::vector<std::string> skipped_;
};

template <class Opt>
void Sharded<Opt>::register_pieces(Local& o) {
  detail::copy_settings<T>(*settings_, o);
  for (std::size_t k = 0; k < mine_.size(); ++k) {
    const Piece& p = pieces_[mine_[k]];
    const Record& r = records_[p.tensor];
    const std::string name = p.whole ? r.name : r.name + "#" + std::to_string(p.begin);
    o.add_to_group(r.group, name, r.param + p.begin, sum_.data() + mine_pos_[k], p.shape, p.norm);
  }
}

}  // namespace dualopt::mpi

#include "mpi/agreement.hpp"
#include "mpi/checkpoint.hpp"
#include "mpi/step.hpp"
