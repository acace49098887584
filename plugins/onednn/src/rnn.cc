// XLA FFI handlers running one recurrent layer (one or both directions) through oneDNN's
// fused RNN primitives: LSTM (optionally with projection), linear-before-reset GRU and
// the Elman RNN (tanh / relu).
//
// All tensors cross the FFI boundary in oneDNN's plain layouts; the Python side converts
// PyTorch's parameters into them (and JAX's autodiff converts the gradients back):
//   x        (T, N, I)            tnc
//   h0, hn   (1, D, N, O)         ldnc   O = P with projection, else H
//   c0, cn   (1, D, N, H)         ldnc   LSTM only, else a (0,) placeholder
//   w_layer  (1, D, G, H, I)      ldgoi  i.e. PyTorch's weight_ih (G*H, I) as it is
//   w_iter   (1, D, G, H, O)      ldgoi  PyTorch's weight_hh
//   w_proj   (1, D, P, H)         ldoi   PyTorch's weight_hr; LSTM projection only, else (0,)
//   bias     (1, D, Gb, H)        ldgo   Gb = G, or 4 for lbr_gru
//   y        (T, N, D * O)        tnc    directions concatenated
//   ws       (bytes,) uint8       the forward-training workspace, consumed by backward
//
// Primitives are built once per shape and kept in a bounded LRU cache: building one costs
// milliseconds (JIT code generation), executing it at small shapes costs less.

#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

enum Mode : int32_t { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

struct Key {
  int32_t mode, bidir, training;
  int64_t T, N, I, H, P;  // P = 0: no projection
  auto tie() const { return std::tie(mode, bidir, training, T, N, I, H, P); }
  bool operator<(const Key &o) const { return tie() < o.tie(); }
};

int64_t gates(int32_t mode) { return mode == kLstm ? 4 : mode == kGru ? 3 : 1; }
int64_t bias_gates(int32_t mode) { return mode == kGru ? 4 : gates(mode); }

// The descriptors of one primitive's arguments as the user passes them (plain layouts).
struct Plain {
  md src_layer, src_iter, src_iter_c, w_layer, w_iter, w_proj, bias, dst_layer, dst_iter,
      dst_iter_c;
};

Plain plain_descs(const Key &k, bool any_weights) {
  const int64_t D = k.bidir ? 2 : 1, G = gates(k.mode), O = k.P ? k.P : k.H;
  const bool lstm = k.mode == kLstm;
  // PyTorch's own weight layout (gates, outputs, inputs) is oneDNN's ldgoi: passing it as
  // is leaves the transposition to the reorder into the primitive's blocked layout, which
  // is needed anyway, instead of an extra transpose in XLA.
  const tag wtag = any_weights ? tag::any : tag::ldgoi;
  Plain p;
  p.src_layer = md({k.T, k.N, k.I}, dt::f32, tag::tnc);
  p.src_iter = md({1, D, k.N, O}, dt::f32, tag::ldnc);
  p.src_iter_c = lstm ? md({1, D, k.N, k.H}, dt::f32, tag::ldnc) : md();
  p.w_layer = md({1, D, k.I, G, k.H}, dt::f32, wtag);
  p.w_iter = md({1, D, O, G, k.H}, dt::f32, wtag);
  p.w_proj = k.P ? md({1, D, k.H, k.P}, dt::f32, any_weights ? tag::any : tag::ldoi) : md();
  p.bias = md({1, D, bias_gates(k.mode), k.H}, dt::f32, tag::ldgo);
  p.dst_layer = md({k.T, k.N, D * O}, dt::f32, tag::tnc);
  p.dst_iter = p.src_iter;
  p.dst_iter_c = p.src_iter_c;
  return p;
}

// One cached configuration: the forward primitive (inference or training) and, for
// training, the backward primitive built with the forward one as its hint.
struct Entry {
  dnnl::primitive fwd, bwd;
  // Weight layouts the primitives chose (format any); reordered into when they differ
  // from the plain ldgoi / ldoi the caller passes.
  md fwd_wl, fwd_wi, fwd_wp, bwd_wl, bwd_wi, bwd_wp, bwd_dwl, bwd_dwi, bwd_dwp;
  md fwd_scratch, bwd_scratch, workspace;
};

dnnl::engine &engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::algorithm activation(int32_t mode) {
  return mode == kRnnRelu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_tanh;
}

// Below this many flops per time step and direction, one thread: oneDNN synchronises its
// OpenMP team at every step, which costs more than the split saves. Measured on a 2-core box
// beside XLA's thread pool: one thread ran inference faster at every shape up to the
// standard benchmark's 34 MFLOP a step (LSTM forward 0.87x the two-thread time, B=8, H=256
// 2-3x faster), and training faster up to ~21 MFLOP; above that the backward's larger
// products gain from the second thread. Far better too when other processes deschedule a
// team member. JAXRNN_ONEDNN_NUM_THREADS forces a count for all.
constexpr double kSmallStepFlopsInference = 64e6;
constexpr double kSmallStepFlopsTraining = 24e6;

int threads_for(const Key &k) {
  static const int forced = [] {
    const char *s = std::getenv("JAXRNN_ONEDNN_NUM_THREADS");
    return s ? std::atoi(s) : 0;
  }();
  if (forced > 0) return forced;
  const int64_t O = k.P ? k.P : k.H;
  const double flops = 2.0 * k.N * gates(k.mode) * k.H * (k.I + O);
  const double small = k.training ? kSmallStepFlopsTraining : kSmallStepFlopsInference;
  return flops < small ? 1 : 0;  // 0: the thread's OpenMP default
}

// Sets this thread's OpenMP team size (a per-thread setting in libgomp) for one primitive's
// creation or execution and restores it after, so callers such as torch on the same thread
// keep theirs.
class ThreadScope {
 public:
  explicit ThreadScope(int n) : prev_(omp_get_max_threads()), set_(n > 0) {
    if (set_) omp_set_num_threads(n);
  }
  ~ThreadScope() {
    if (set_) omp_set_num_threads(prev_);
  }

 private:
  int prev_;
  bool set_;
};

std::shared_ptr<Entry> build(const Key &k) {
  ThreadScope threads(threads_for(k));
  auto &eng = engine();
  const Plain u = plain_descs(k, /*any_weights=*/false);
  const Plain a = plain_descs(k, /*any_weights=*/true);
  const auto dir = k.bidir ? dnnl::rnn_direction::bidirectional_concat
                           : dnnl::rnn_direction::unidirectional_left2right;
  const auto pk =
      k.training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  // User-managed scratchpad: the library-managed one is shared between concurrent
  // executions, and XLA may run independent custom calls on several threads.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto e = std::make_shared<Entry>();

  // The forward descriptor of the mode, and the matching backward one; written out per
  // primitive kind because oneDNN's C++ API types each pair separately.
  auto finish_fwd = [&](const auto &pd) {
    e->fwd_wl = pd.weights_layer_desc();
    e->fwd_wi = pd.weights_iter_desc();
    e->fwd_scratch = pd.scratchpad_desc();
    if (k.training) e->workspace = pd.workspace_desc();
  };
  auto finish_bwd = [&](const auto &pd) {
    e->bwd_wl = pd.weights_layer_desc();
    e->bwd_wi = pd.weights_iter_desc();
    e->bwd_dwl = pd.diff_weights_layer_desc();
    e->bwd_dwi = pd.diff_weights_iter_desc();
    e->bwd_scratch = pd.scratchpad_desc();
  };
  // Backward gradient descriptors: plain for activations and bias, any for weights.
  const Plain d = a;
  switch (k.mode) {
    case kLstm: {
      dnnl::lstm_forward::primitive_desc fpd(eng, pk, dir, u.src_layer, u.src_iter,
                                             u.src_iter_c, a.w_layer, a.w_iter, md(),
                                             a.w_proj, u.bias, u.dst_layer, u.dst_iter,
                                             u.dst_iter_c, attr);
      finish_fwd(fpd);
      e->fwd_wp = fpd.weights_projection_desc();
      e->fwd = dnnl::lstm_forward(fpd);
      if (k.training) {
        dnnl::lstm_backward::primitive_desc bpd(
            eng, dnnl::prop_kind::backward, dir, u.src_layer, u.src_iter, u.src_iter_c,
            a.w_layer, a.w_iter, md(), a.w_proj, u.bias, u.dst_layer, u.dst_iter,
            u.dst_iter_c, u.src_layer, u.src_iter, u.src_iter_c, d.w_layer, d.w_iter, md(),
            d.w_proj, u.bias, u.dst_layer, u.dst_iter, u.dst_iter_c, fpd, attr);
        finish_bwd(bpd);
        e->bwd_wp = bpd.weights_projection_desc();
        e->bwd_dwp = bpd.diff_weights_projection_desc();
        e->bwd = dnnl::lstm_backward(bpd);
      }
      break;
    }
    case kGru: {
      dnnl::lbr_gru_forward::primitive_desc fpd(eng, pk, dir, u.src_layer, u.src_iter,
                                                a.w_layer, a.w_iter, u.bias, u.dst_layer,
                                                u.dst_iter, attr);
      finish_fwd(fpd);
      e->fwd = dnnl::lbr_gru_forward(fpd);
      if (k.training) {
        dnnl::lbr_gru_backward::primitive_desc bpd(
            eng, dnnl::prop_kind::backward, dir, u.src_layer, u.src_iter, a.w_layer,
            a.w_iter, u.bias, u.dst_layer, u.dst_iter, u.src_layer, u.src_iter, d.w_layer,
            d.w_iter, u.bias, u.dst_layer, u.dst_iter, fpd, attr);
        finish_bwd(bpd);
        e->bwd = dnnl::lbr_gru_backward(bpd);
      }
      break;
    }
    case kRnnTanh:
    case kRnnRelu: {
      dnnl::vanilla_rnn_forward::primitive_desc fpd(eng, pk, activation(k.mode), dir,
                                                    u.src_layer, u.src_iter, a.w_layer,
                                                    a.w_iter, u.bias, u.dst_layer,
                                                    u.dst_iter, attr);
      finish_fwd(fpd);
      e->fwd = dnnl::vanilla_rnn_forward(fpd);
      if (k.training) {
        dnnl::vanilla_rnn_backward::primitive_desc bpd(
            eng, dnnl::prop_kind::backward, activation(k.mode), dir, u.src_layer,
            u.src_iter, a.w_layer, a.w_iter, u.bias, u.dst_layer, u.dst_iter, u.src_layer,
            u.src_iter, d.w_layer, d.w_iter, u.bias, u.dst_layer, u.dst_iter, fpd, attr);
        finish_bwd(bpd);
        e->bwd = dnnl::vanilla_rnn_backward(bpd);
      }
      break;
    }
    default:
      throw std::invalid_argument("unknown mode " + std::to_string(k.mode));
  }
  return e;
}

// Bounded LRU cache of built primitives; entries are shared_ptr so an eviction while
// another thread still executes the entry is harmless.
class Cache {
 public:
  std::shared_ptr<Entry> get(const Key &k) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(k);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    auto e = build(k);
    order_.emplace_front(k, e);
    index_[k] = order_.begin();
    while (order_.size() > capacity()) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return e;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_.size();
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    order_.clear();
    index_.clear();
  }
  static size_t capacity() {
    static const size_t cap = [] {
      const char *s = std::getenv("JAXRNN_ONEDNN_CACHE_SIZE");
      long v = s ? std::atol(s) : 0;
      return v > 0 ? static_cast<size_t>(v) : size_t{64};
    }();
    return cap;
  }

 private:
  using Item = std::pair<Key, std::shared_ptr<Entry>>;
  std::mutex mu_;
  std::list<Item> order_;
  std::map<Key, std::list<Item>::iterator> index_;
};

Cache &cache() {
  static Cache c;
  return c;
}

// Per-thread, grow-only, 64-byte aligned host buffers for scratchpads and reordered
// weights. Allocating them per call costs more than the RNN at small shapes: glibc maps
// large blocks fresh each time, and every first touch of a page faults. A thread executes
// one primitive at a time, so its buffers are never shared.
enum Slot { kScratch, kWl, kWi, kWp, kDwl, kDwi, kDwp, kSlots };

void *thread_buffer(Slot slot, size_t bytes) {
  struct Buf {
    void *ptr = nullptr;
    size_t size = 0;
    ~Buf() { std::free(ptr); }
  };
  thread_local Buf bufs[kSlots];
  Buf &b = bufs[slot];
  if (bytes > b.size) {
    std::free(b.ptr);
    b.size = 0;
    b.ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!b.ptr) throw std::bad_alloc();
    b.size = bytes;
  }
  return b.ptr;
}

// The weights in the layout a primitive wants: the caller's buffer itself when the layouts
// agree, else a reordered copy in this thread's buffer `slot`.
memory weights_as(const md &want, const md &have, void *data, dnnl::stream &s, Slot slot) {
  auto &eng = engine();
  memory user(have, eng, data);
  if (want == have) return user;
  memory m(want, eng, thread_buffer(slot, want.get_size()));
  dnnl::reorder(user, m).execute(s, user, m);
  return m;
}

// Shapes read off the FFI buffers and checked against each other.
template <typename B>
std::vector<int64_t> dims_of(const B &b) {
  auto d = b.dimensions();
  return std::vector<int64_t>(d.begin(), d.end());
}

// Empty on success, else what is wrong with the buffers' shapes.
std::string key_of(int32_t mode, int32_t bidir, int32_t training, const std::vector<int64_t> &x,
                   const std::vector<int64_t> &wi, const std::vector<int64_t> &wp,
                   const std::vector<int64_t> &bias, Key *k) {
  if (mode < kLstm || mode > kRnnRelu) return "bad mode";
  if (x.size() != 3 || wi.size() != 5 || bias.size() != 4)
    return "bad ranks (x tnc, w_iter ldgoi, bias ldgo)";
  *k = Key{mode, bidir ? 1 : 0, training, x[0], x[1], x[2], bias[3], 0};
  if (wp.size() == 4) {
    if (mode != kLstm) return "projection is LSTM only";
    k->P = wp[2];
  }
  const int64_t O = k->P ? k->P : k->H;
  if (wi[4] != O || wi[2] != gates(mode) || wi[3] != k->H || wi[1] != (bidir ? 2 : 1))
    return "w_iter shape does not match bias / projection";
  return "";
}

ffi::Error internal(const std::exception &e) {
  return ffi::Error::Internal(std::string("jaxrnn_onednn: ") + e.what());
}

ffi::Error Forward(int32_t training, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0,
                   ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> wl,
                   ffi::Buffer<ffi::F32> wi, ffi::Buffer<ffi::F32> wp,
                   ffi::Buffer<ffi::F32> bias, ffi::Result<ffi::Buffer<ffi::F32>> y,
                   ffi::Result<ffi::Buffer<ffi::F32>> hn, ffi::Result<ffi::Buffer<ffi::F32>> cn,
                   void *ws, size_t ws_bytes, int32_t mode, int32_t bidir) {
  Key k;
  auto bad = key_of(mode, bidir, training, dims_of(x), dims_of(wi), dims_of(wp), dims_of(bias), &k);
  if (!bad.empty()) return ffi::Error::InvalidArgument("jaxrnn_onednn: " + bad);
  try {
    auto e = cache().get(k);
    if (training && e->workspace.get_size() > ws_bytes)
      return ffi::Error::InvalidArgument("workspace buffer too small");
    auto &eng = engine();
    dnnl::stream s(eng);
    const Plain u = plain_descs(k, false);
    void *scratch = thread_buffer(kScratch, e->fwd_scratch.get_size());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, memory(u.src_layer, eng, x.typed_data())},
        {DNNL_ARG_SRC_ITER, memory(u.src_iter, eng, h0.typed_data())},
        {DNNL_ARG_WEIGHTS_LAYER, weights_as(e->fwd_wl, u.w_layer, wl.typed_data(), s, kWl)},
        {DNNL_ARG_WEIGHTS_ITER, weights_as(e->fwd_wi, u.w_iter, wi.typed_data(), s, kWi)},
        {DNNL_ARG_BIAS, memory(u.bias, eng, bias.typed_data())},
        {DNNL_ARG_DST_LAYER, memory(u.dst_layer, eng, y->typed_data())},
        {DNNL_ARG_DST_ITER, memory(u.dst_iter, eng, hn->typed_data())},
        {DNNL_ARG_SCRATCHPAD, memory(e->fwd_scratch, eng, scratch)},
    };
    if (k.mode == kLstm) {
      args[DNNL_ARG_SRC_ITER_C] = memory(u.src_iter_c, eng, c0.typed_data());
      args[DNNL_ARG_DST_ITER_C] = memory(u.dst_iter_c, eng, cn->typed_data());
    }
    if (k.P)
      args[DNNL_ARG_WEIGHTS_PROJECTION] =
          weights_as(e->fwd_wp, u.w_proj, wp.typed_data(), s, kWp);
    if (training) args[DNNL_ARG_WORKSPACE] = memory(e->workspace, eng, ws);
    {
      ThreadScope threads(threads_for(k));
      e->fwd.execute(s, args);
      s.wait();
    }
  } catch (const std::exception &ex) {
    return internal(ex);
  }
  return ffi::Error::Success();
}

ffi::Error ForwardInference(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0,
                            ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> wl,
                            ffi::Buffer<ffi::F32> wi, ffi::Buffer<ffi::F32> wp,
                            ffi::Buffer<ffi::F32> bias, ffi::Result<ffi::Buffer<ffi::F32>> y,
                            ffi::Result<ffi::Buffer<ffi::F32>> hn,
                            ffi::Result<ffi::Buffer<ffi::F32>> cn, int32_t mode,
                            int32_t bidir) {
  return Forward(0, x, h0, c0, wl, wi, wp, bias, y, hn, cn, nullptr, 0, mode, bidir);
}

ffi::Error ForwardTraining(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0,
                           ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> wl,
                           ffi::Buffer<ffi::F32> wi, ffi::Buffer<ffi::F32> wp,
                           ffi::Buffer<ffi::F32> bias, ffi::Result<ffi::Buffer<ffi::F32>> y,
                           ffi::Result<ffi::Buffer<ffi::F32>> hn,
                           ffi::Result<ffi::Buffer<ffi::F32>> cn,
                           ffi::Result<ffi::Buffer<ffi::U8>> ws, int32_t mode, int32_t bidir) {
  return Forward(1, x, h0, c0, wl, wi, wp, bias, y, hn, cn, ws->untyped_data(),
                 ws->size_bytes(), mode, bidir);
}

ffi::Error Backward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                    ffi::Buffer<ffi::F32> wl, ffi::Buffer<ffi::F32> wi,
                    ffi::Buffer<ffi::F32> wp, ffi::Buffer<ffi::F32> bias,
                    ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> hn,
                    ffi::Buffer<ffi::F32> cn, ffi::Buffer<ffi::U8> ws,
                    ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> dhn,
                    ffi::Buffer<ffi::F32> dcn, ffi::Result<ffi::Buffer<ffi::F32>> dx,
                    ffi::Result<ffi::Buffer<ffi::F32>> dh0,
                    ffi::Result<ffi::Buffer<ffi::F32>> dc0,
                    ffi::Result<ffi::Buffer<ffi::F32>> dwl,
                    ffi::Result<ffi::Buffer<ffi::F32>> dwi,
                    ffi::Result<ffi::Buffer<ffi::F32>> dwp,
                    ffi::Result<ffi::Buffer<ffi::F32>> dbias, int32_t mode, int32_t bidir) {
  Key k;
  auto bad = key_of(mode, bidir, 1, dims_of(x), dims_of(wi), dims_of(wp), dims_of(bias), &k);
  if (!bad.empty()) return ffi::Error::InvalidArgument("jaxrnn_onednn: " + bad);
  try {
    auto e = cache().get(k);
    if (e->workspace.get_size() > ws.size_bytes())
      return ffi::Error::InvalidArgument("workspace buffer too small");
    auto &eng = engine();
    dnnl::stream s(eng);
    const Plain u = plain_descs(k, false);
    void *scratch = thread_buffer(kScratch, e->bwd_scratch.get_size());
    // oneDNN accumulates into the weight and bias gradients; start them at zero. When the
    // primitive wants another layout for them, it accumulates into a copy reordered after.
    auto diff_weights = [&](const md &want, const md &have, void *out, Slot slot) {
      if (want == have) {
        std::memset(out, 0, have.get_size());
        return memory(have, eng, out);
      }
      void *buf = thread_buffer(slot, want.get_size());
      std::memset(buf, 0, want.get_size());
      return memory(want, eng, buf);
    };
    memory m_dwl = diff_weights(e->bwd_dwl, u.w_layer, dwl->typed_data(), kDwl);
    memory m_dwi = diff_weights(e->bwd_dwi, u.w_iter, dwi->typed_data(), kDwi);
    std::memset(dbias->typed_data(), 0, u.bias.get_size());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, memory(u.src_layer, eng, x.typed_data())},
        {DNNL_ARG_SRC_ITER, memory(u.src_iter, eng, h0.typed_data())},
        {DNNL_ARG_WEIGHTS_LAYER, weights_as(e->bwd_wl, u.w_layer, wl.typed_data(), s, kWl)},
        {DNNL_ARG_WEIGHTS_ITER, weights_as(e->bwd_wi, u.w_iter, wi.typed_data(), s, kWi)},
        {DNNL_ARG_BIAS, memory(u.bias, eng, bias.typed_data())},
        {DNNL_ARG_DST_LAYER, memory(u.dst_layer, eng, y.typed_data())},
        {DNNL_ARG_DST_ITER, memory(u.dst_iter, eng, hn.typed_data())},
        {DNNL_ARG_WORKSPACE, memory(e->workspace, eng, ws.untyped_data())},
        {DNNL_ARG_DIFF_DST_LAYER, memory(u.dst_layer, eng, dy.typed_data())},
        {DNNL_ARG_DIFF_DST_ITER, memory(u.dst_iter, eng, dhn.typed_data())},
        {DNNL_ARG_DIFF_SRC_LAYER, memory(u.src_layer, eng, dx->typed_data())},
        {DNNL_ARG_DIFF_SRC_ITER, memory(u.src_iter, eng, dh0->typed_data())},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, m_dwl},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, m_dwi},
        {DNNL_ARG_DIFF_BIAS, memory(u.bias, eng, dbias->typed_data())},
        {DNNL_ARG_SCRATCHPAD, memory(e->bwd_scratch, eng, scratch)},
    };
    memory m_dwp;
    if (k.mode == kLstm) {
      args[DNNL_ARG_SRC_ITER_C] = memory(u.src_iter_c, eng, c0.typed_data());
      args[DNNL_ARG_DST_ITER_C] = memory(u.dst_iter_c, eng, cn.typed_data());
      args[DNNL_ARG_DIFF_DST_ITER_C] = memory(u.dst_iter_c, eng, dcn.typed_data());
      args[DNNL_ARG_DIFF_SRC_ITER_C] = memory(u.src_iter_c, eng, dc0->typed_data());
    }
    if (k.P) {
      args[DNNL_ARG_WEIGHTS_PROJECTION] =
          weights_as(e->bwd_wp, u.w_proj, wp.typed_data(), s, kWp);
      m_dwp = diff_weights(e->bwd_dwp, u.w_proj, dwp->typed_data(), kDwp);
      args[DNNL_ARG_DIFF_WEIGHTS_PROJECTION] = m_dwp;
    }
    {
      ThreadScope threads(threads_for(k));
      e->bwd.execute(s, args);
      s.wait();
    }
    auto back = [&](const memory &m, const md &have, void *out) {
      if (m.get_desc() == have) return;
      memory user(have, eng, out);
      dnnl::reorder(m, user).execute(s, const_cast<memory &>(m), user);
    };
    back(m_dwl, u.w_layer, dwl->typed_data());
    back(m_dwi, u.w_iter, dwi->typed_data());
    if (k.P) back(m_dwp, u.w_proj, dwp->typed_data());
    s.wait();
  } catch (const std::exception &ex) {
    return internal(ex);
  }
  return ffi::Error::Success();
}

thread_local std::string last_error;

}  // namespace

#define JAXRNN_F32 ffi::Buffer<ffi::F32>
#define JAXRNN_EXPORT extern "C" __attribute__((visibility("default")))

// Declared first so the handler symbols stay visible under -fvisibility=hidden.
JAXRNN_EXPORT XLA_FFI_Error *JaxrnnOnednnForwardInference(XLA_FFI_CallFrame *);
JAXRNN_EXPORT XLA_FFI_Error *JaxrnnOnednnForwardTraining(XLA_FFI_CallFrame *);
JAXRNN_EXPORT XLA_FFI_Error *JaxrnnOnednnBackward(XLA_FFI_CallFrame *);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnOnednnForwardInference, ForwardInference,
                              ffi::Ffi::Bind()
                                  .Arg<JAXRNN_F32>()  // x
                                  .Arg<JAXRNN_F32>()  // h0
                                  .Arg<JAXRNN_F32>()  // c0
                                  .Arg<JAXRNN_F32>()  // w_layer
                                  .Arg<JAXRNN_F32>()  // w_iter
                                  .Arg<JAXRNN_F32>()  // w_proj
                                  .Arg<JAXRNN_F32>()  // bias
                                  .Ret<JAXRNN_F32>()  // y
                                  .Ret<JAXRNN_F32>()  // hn
                                  .Ret<JAXRNN_F32>()  // cn
                                  .Attr<int32_t>("mode")
                                  .Attr<int32_t>("bidir"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnOnednnForwardTraining, ForwardTraining,
                              ffi::Ffi::Bind()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Arg<JAXRNN_F32>()
                                  .Ret<JAXRNN_F32>()
                                  .Ret<JAXRNN_F32>()
                                  .Ret<JAXRNN_F32>()
                                  .Ret<ffi::Buffer<ffi::U8>>()  // workspace
                                  .Attr<int32_t>("mode")
                                  .Attr<int32_t>("bidir"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnOnednnBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<JAXRNN_F32>()  // x
                                  .Arg<JAXRNN_F32>()  // h0
                                  .Arg<JAXRNN_F32>()  // c0
                                  .Arg<JAXRNN_F32>()  // w_layer
                                  .Arg<JAXRNN_F32>()  // w_iter
                                  .Arg<JAXRNN_F32>()  // w_proj
                                  .Arg<JAXRNN_F32>()  // bias
                                  .Arg<JAXRNN_F32>()  // y
                                  .Arg<JAXRNN_F32>()  // hn
                                  .Arg<JAXRNN_F32>()  // cn
                                  .Arg<ffi::Buffer<ffi::U8>>()  // workspace
                                  .Arg<JAXRNN_F32>()  // dy
                                  .Arg<JAXRNN_F32>()  // dhn
                                  .Arg<JAXRNN_F32>()  // dcn
                                  .Ret<JAXRNN_F32>()  // dx
                                  .Ret<JAXRNN_F32>()  // dh0
                                  .Ret<JAXRNN_F32>()  // dc0
                                  .Ret<JAXRNN_F32>()  // dw_layer
                                  .Ret<JAXRNN_F32>()  // dw_iter
                                  .Ret<JAXRNN_F32>()  // dw_proj
                                  .Ret<JAXRNN_F32>()  // dbias
                                  .Attr<int32_t>("mode")
                                  .Attr<int32_t>("bidir"));

// Plain C helpers for ctypes: the workspace size the Python side must allocate (built
// through the same cache, so forward and backward agree on it), a probe, and the cache.
extern "C" {

__attribute__((visibility("default"))) int64_t jaxrnn_onednn_workspace_size(
    int32_t mode, int32_t bidir, int64_t T, int64_t N, int64_t I, int64_t H, int64_t P) {
  try {
    Key k{mode, bidir ? 1 : 0, 1, T, N, I, H, P};
    if (mode < kLstm || mode > kRnnRelu) throw std::invalid_argument("bad mode");
    return static_cast<int64_t>(cache().get(k)->workspace.get_size());
  } catch (const std::exception &ex) {
    last_error = ex.what();
    return -1;
  }
}

__attribute__((visibility("default"))) const char *jaxrnn_onednn_last_error() {
  return last_error.c_str();
}

__attribute__((visibility("default"))) int64_t jaxrnn_onednn_cache_size() {
  return static_cast<int64_t>(cache().size());
}

__attribute__((visibility("default"))) int64_t jaxrnn_onednn_cache_capacity() {
  return static_cast<int64_t>(Cache::capacity());
}

__attribute__((visibility("default"))) void jaxrnn_onednn_cache_clear() { cache().clear(); }

__attribute__((visibility("default"))) int64_t jaxrnn_onednn_version() {
  const dnnl_version_t *v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}

}  // extern "C"
