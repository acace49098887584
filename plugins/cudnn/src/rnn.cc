// cuDNN's RNN (v8/v9 API: cudnnRNNForward, cudnnRNNBackwardData_v8,
// cudnnRNNBackwardWeights_v8) behind the XLA FFI, on the stream XLA gives each call.
//
// One cudnnHandle per device, created lazily, bound to XLA's stream on every call; RNN
// descriptors are cached per configuration. The workspace comes from XLA's scratch
// allocator; the reserve space is an explicit output of the training forward (its size is
// planned at trace time by jaxrnn_cudnn_plan) and an aliased input/output of the backward.
// Every failure returns an ffi::Error carrying cuDNN's or CUDA's status string.

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

#define JAXRNN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// Configuration attributes, in the order every entry point takes them.
struct Config {
  int32_t mode;    // cudnnRNNMode_t: 0 relu, 1 tanh, 2 lstm, 3 gru
  int32_t bidir;   // 0 or 1
  int32_t layers;  // >= 1
  int32_t input;   // I
  int32_t hidden;  // H
  int32_t proj;    // P (LSTM projection) or 0
  int32_t algo;    // cudnnRNNAlgo_t
  int32_t math;    // 0 default (TF32 allowed, as torch), 1 FMA (full float32), 2 tensor ops
  int32_t dtype;   // 0 float32, 1 bfloat16
  std::array<int32_t, 9> key() const {
    return {mode, bidir, layers, input, hidden, proj, algo, math, dtype};
  }
  int32_t dirs() const { return bidir ? 2 : 1; }
  int32_t out() const { return proj ? proj : hidden; }
  cudnnDataType_t data_type() const {
    return dtype == 1 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  }
  size_t elem() const { return dtype == 1 ? 2 : 4; }
};

std::string describe(const Config &c) {
  return "mode=" + std::to_string(c.mode) + " bidir=" + std::to_string(c.bidir) +
         " layers=" + std::to_string(c.layers) + " input=" + std::to_string(c.input) +
         " hidden=" + std::to_string(c.hidden) + " proj=" + std::to_string(c.proj) +
         " algo=" + std::to_string(c.algo) + " math=" + std::to_string(c.math) +
         " dtype=" + std::to_string(c.dtype);
}

struct Failure {
  std::string message;
};

void check(cudnnStatus_t s, const char *what) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw Failure{std::string(what) + ": " + cudnnGetErrorString(s) + " (cudnnStatus " +
                  std::to_string(static_cast<int>(s)) + ")"};
}

void check_cuda(cudaError_t e, const char *what) {
  if (e != cudaSuccess)
    throw Failure{std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e)};
}

#define CUDNN(call) check((call), #call)
#define CUDA(call) check_cuda((call), #call)

struct RnnDesc {
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  size_t weight_bytes = 0;
  ~RnnDesc() {
    if (rnn) cudnnDestroyRNNDescriptor(rnn);
    if (dropout) cudnnDestroyDropoutDescriptor(dropout);
  }
};

struct Device {
  cudnnHandle_t handle = nullptr;
  std::mutex mu;  // one call at a time on this handle (it is bound to one stream per call)
  std::map<std::array<int32_t, 9>, std::unique_ptr<RnnDesc>> cache;
};

std::mutex g_mu;
std::map<int, std::unique_ptr<Device>> g_devices;

Device &current_device() {
  int dev = 0;
  CUDA(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(g_mu);
  auto &slot = g_devices[dev];
  if (!slot) {
    auto d = std::make_unique<Device>();
    CUDNN(cudnnCreate(&d->handle));
    slot = std::move(d);
  }
  return *slot;
}

cudnnMathType_t math_type(const Config &c) {
  switch (c.math) {
    case 0:
      return CUDNN_DEFAULT_MATH;
    case 1:
      return CUDNN_FMA_MATH;
    case 2:
      return CUDNN_TENSOR_OP_MATH;
    default:
      throw Failure{"unknown math " + std::to_string(c.math)};
  }
}

// Caller holds dev.mu.
RnnDesc &rnn_desc(Device &dev, const Config &c) {
  auto &slot = dev.cache[c.key()];
  if (slot) return *slot;
  auto d = std::make_unique<RnnDesc>();
  CUDNN(cudnnCreateDropoutDescriptor(&d->dropout));
  // No dropout between layers: no states needed.
  CUDNN(cudnnSetDropoutDescriptor(d->dropout, dev.handle, 0.0f, nullptr, 0, 0));
  CUDNN(cudnnCreateRNNDescriptor(&d->rnn));
  if (c.mode < 0 || c.mode > 3) throw Failure{"unknown mode " + std::to_string(c.mode)};
  if (c.algo < 0 || c.algo > 3) throw Failure{"unknown algo " + std::to_string(c.algo)};
  CUDNN(cudnnSetRNNDescriptor_v8(
      d->rnn, static_cast<cudnnRNNAlgo_t>(c.algo), static_cast<cudnnRNNMode_t>(c.mode),
      CUDNN_RNN_DOUBLE_BIAS, c.bidir ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL,
      CUDNN_LINEAR_INPUT, c.data_type(), CUDNN_DATA_FLOAT, math_type(c), c.input, c.hidden,
      c.out(), c.layers, d->dropout, CUDNN_RNN_PADDED_IO_ENABLED));
  CUDNN(cudnnGetRNNWeightSpaceSize(dev.handle, d->rnn, &d->weight_bytes));
  slot = std::move(d);
  return *slot;
}

// Per-call descriptors: the data descriptors carry the host sequence lengths.
struct Data {
  cudnnRNNDataDescriptor_t x = nullptr, y = nullptr;
  cudnnTensorDescriptor_t h = nullptr, c = nullptr;
  std::vector<int32_t> lengths;
  Data(const Config &cfg, int32_t t, int32_t b, std::vector<int32_t> lens)
      : lengths(std::move(lens)) {
    double zero = 0.0;  // padding fill: zero bits read as float32 or bfloat16
    CUDNN(cudnnCreateRNNDataDescriptor(&x));
    CUDNN(cudnnCreateRNNDataDescriptor(&y));
    CUDNN(cudnnCreateTensorDescriptor(&h));
    CUDNN(cudnnCreateTensorDescriptor(&c));
    CUDNN(cudnnSetRNNDataDescriptor(x, cfg.data_type(), CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED,
                                    t, b, cfg.input, lengths.data(), &zero));
    CUDNN(cudnnSetRNNDataDescriptor(y, cfg.data_type(), CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED,
                                    t, b, cfg.dirs() * cfg.out(), lengths.data(), &zero));
    int hd[3] = {cfg.layers * cfg.dirs(), b, cfg.out()};
    int hs[3] = {b * cfg.out(), cfg.out(), 1};
    CUDNN(cudnnSetTensorNdDescriptor(h, cfg.data_type(), 3, hd, hs));
    int cd[3] = {cfg.layers * cfg.dirs(), b, cfg.hidden};
    int cs[3] = {b * cfg.hidden, cfg.hidden, 1};
    CUDNN(cudnnSetTensorNdDescriptor(c, cfg.data_type(), 3, cd, cs));
  }
  ~Data() {
    if (x) cudnnDestroyRNNDataDescriptor(x);
    if (y) cudnnDestroyRNNDataDescriptor(y);
    if (h) cudnnDestroyTensorDescriptor(h);
    if (c) cudnnDestroyTensorDescriptor(c);
  }
  Data(const Data &) = delete;
  Data &operator=(const Data &) = delete;
};

thread_local std::string g_last_error;

void set_error(const std::string &m) { g_last_error = m; }

ffi::Error fail(const std::string &where, const std::string &msg, const Config &c) {
  return ffi::Error::Internal("jaxrnn_cudnn " + where + ": " + msg + " [" + describe(c) + "]");
}

// Host copies of the (B,) int32 lengths: a device-to-host copy on XLA's stream and a
// synchronize (the one place this plugin syncs), only for calls that have lengths.
std::vector<int32_t> host_lengths(bool has, const int32_t *dev, int32_t t, int32_t b,
                                  cudaStream_t stream) {
  std::vector<int32_t> lens(b, t);
  if (!has) return lens;
  CUDA(cudaMemcpyAsync(lens.data(), dev, sizeof(int32_t) * b, cudaMemcpyDeviceToHost, stream));
  CUDA(cudaStreamSynchronize(stream));
  for (int32_t i = 0; i < b; ++i)
    if (lens[i] < 1 || lens[i] > t)
      throw Failure{"lengths[" + std::to_string(i) + "] = " + std::to_string(lens[i]) +
                    " is outside [1, T=" + std::to_string(t) + "]"};
  return lens;
}

void *scratch(ffi::ScratchAllocator &alloc, size_t bytes) {
  if (bytes == 0) return nullptr;
  auto p = alloc.Allocate(bytes);
  if (!p.has_value())
    throw Failure{"XLA's scratch allocator could not give " + std::to_string(bytes) +
                  " bytes of workspace"};
  return *p;
}

void need(size_t have, size_t want, const char *what) {
  if (have < want)
    throw Failure{std::string(what) + " buffer has " + std::to_string(have) + " bytes, cuDNN needs " +
                  std::to_string(want)};
}

ffi::Error Forward(cudaStream_t stream, ffi::ScratchAllocator alloc, ffi::AnyBuffer x,
                   ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer w,
                   ffi::Buffer<ffi::S32> lengths, ffi::Result<ffi::AnyBuffer> y,
                   ffi::Result<ffi::AnyBuffer> hy, ffi::Result<ffi::AnyBuffer> cy,
                   ffi::Result<ffi::AnyBuffer> reserve, int32_t mode, int32_t bidir,
                   int32_t layers, int32_t input, int32_t hidden, int32_t proj, int32_t algo,
                   int32_t math, int32_t dtype, int32_t training, int32_t has_lengths) {
  Config c{mode, bidir, layers, input, hidden, proj, algo, math, dtype};
  try {
    auto dims = x.dimensions();
    if (dims.size() != 3) throw Failure{"x must be (T, B, I)"};
    int32_t t = static_cast<int32_t>(dims[0]), b = static_cast<int32_t>(dims[1]);
    Device &dev = current_device();
    std::lock_guard<std::mutex> lock(dev.mu);
    CUDNN(cudnnSetStream(dev.handle, stream));
    RnnDesc &r = rnn_desc(dev, c);
    need(w.size_bytes(), r.weight_bytes, "weight space");
    Data d(c, t, b, host_lengths(has_lengths, lengths.typed_data(), t, b, stream));
    auto fwd = training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
    size_t ws = 0, rs = 0;
    CUDNN(cudnnGetRNNTempSpaceSizes(dev.handle, r.rnn, fwd, d.x, &ws, &rs));
    if (training) need(reserve->size_bytes(), rs, "reserve space");
    void *work = scratch(alloc, ws);
    bool lstm = mode == CUDNN_LSTM;
    CUDNN(cudnnRNNForward(dev.handle, r.rnn, fwd, lengths.typed_data(), d.x, x.untyped_data(),
                          d.y, y->untyped_data(), d.h, h0.untyped_data(), hy->untyped_data(),
                          d.c, lstm ? c0.untyped_data() : nullptr,
                          lstm ? cy->untyped_data() : nullptr, r.weight_bytes, w.untyped_data(),
                          ws, work, training ? rs : 0,
                          training ? reserve->untyped_data() : nullptr));
  } catch (const Failure &f) {
    return fail("forward", f.message, c);
  }
  return ffi::Error::Success();
}

ffi::Error Backward(cudaStream_t stream, ffi::ScratchAllocator alloc, ffi::AnyBuffer x,
                    ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer w,
                    ffi::Buffer<ffi::S32> lengths, ffi::AnyBuffer y, ffi::AnyBuffer dy,
                    ffi::AnyBuffer dhy, ffi::AnyBuffer dcy, ffi::AnyBuffer reserve_in,
                    ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dh0,
                    ffi::Result<ffi::AnyBuffer> dc0, ffi::Result<ffi::AnyBuffer> dw,
                    ffi::Result<ffi::AnyBuffer> reserve, int32_t mode, int32_t bidir,
                    int32_t layers, int32_t input, int32_t hidden, int32_t proj, int32_t algo,
                    int32_t math, int32_t dtype, int32_t has_lengths) {
  Config c{mode, bidir, layers, input, hidden, proj, algo, math, dtype};
  try {
    auto dims = x.dimensions();
    if (dims.size() != 3) throw Failure{"x must be (T, B, I)"};
    int32_t t = static_cast<int32_t>(dims[0]), b = static_cast<int32_t>(dims[1]);
    // The reserve space is aliased input -> output (cuDNN writes into it during the
    // backward-data pass); XLA gives the same buffer, or copies it first when needed.
    if (reserve->untyped_data() != reserve_in.untyped_data())
      CUDA(cudaMemcpyAsync(reserve->untyped_data(), reserve_in.untyped_data(),
                           reserve_in.size_bytes(), cudaMemcpyDeviceToDevice, stream));
    Device &dev = current_device();
    std::lock_guard<std::mutex> lock(dev.mu);
    CUDNN(cudnnSetStream(dev.handle, stream));
    RnnDesc &r = rnn_desc(dev, c);
    need(w.size_bytes(), r.weight_bytes, "weight space");
    need(dw->size_bytes(), r.weight_bytes, "weight gradient");
    Data d(c, t, b, host_lengths(has_lengths, lengths.typed_data(), t, b, stream));
    size_t ws = 0, rs = 0;
    CUDNN(cudnnGetRNNTempSpaceSizes(dev.handle, r.rnn, CUDNN_FWD_MODE_TRAINING, d.x, &ws, &rs));
    need(reserve->size_bytes(), rs, "reserve space");
    void *work = scratch(alloc, ws);
    bool lstm = mode == CUDNN_LSTM;
    CUDNN(cudnnRNNBackwardData_v8(
        dev.handle, r.rnn, lengths.typed_data(), d.y, y.untyped_data(), dy.untyped_data(), d.x,
        dx->untyped_data(), d.h, h0.untyped_data(), dhy.untyped_data(), dh0->untyped_data(), d.c,
        lstm ? c0.untyped_data() : nullptr, lstm ? dcy.untyped_data() : nullptr,
        lstm ? dc0->untyped_data() : nullptr, r.weight_bytes, w.untyped_data(), ws, work, rs,
        reserve->untyped_data()));
    // WGRAD_MODE_ADD accumulates: start from zeros.
    CUDA(cudaMemsetAsync(dw->untyped_data(), 0, dw->size_bytes(), stream));
    CUDNN(cudnnRNNBackwardWeights_v8(dev.handle, r.rnn, CUDNN_WGRAD_MODE_ADD, lengths.typed_data(),
                                     d.x, x.untyped_data(), d.h, h0.untyped_data(), d.y,
                                     y.untyped_data(), r.weight_bytes, dw->untyped_data(), ws,
                                     work, rs, reserve->untyped_data()));
  } catch (const Failure &f) {
    return fail("backward", f.message, c);
  }
  return ffi::Error::Success();
}

}  // namespace

#define JAXRNN_CONFIG_ATTRS                                                              \
  .Attr<int32_t>("mode")                                                                 \
      .Attr<int32_t>("bidir")                                                            \
      .Attr<int32_t>("layers")                                                           \
      .Attr<int32_t>("input")                                                            \
      .Attr<int32_t>("hidden")                                                           \
      .Attr<int32_t>("proj")                                                             \
      .Attr<int32_t>("algo")                                                             \
      .Attr<int32_t>("math")                                                             \
      .Attr<int32_t>("dtype")

JAXRNN_EXPORT XLA_FFI_Error *JaxrnnCudnnForward(XLA_FFI_CallFrame *);
JAXRNN_EXPORT XLA_FFI_Error *JaxrnnCudnnBackward(XLA_FFI_CallFrame *);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnCudnnForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<ffi::ScratchAllocator>()
                                  .Arg<ffi::AnyBuffer>()       // x (T, B, I)
                                  .Arg<ffi::AnyBuffer>()       // h0 (L*D, B, O)
                                  .Arg<ffi::AnyBuffer>()       // c0 (L*D, B, H) or (0,)
                                  .Arg<ffi::AnyBuffer>()       // weight space
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths (B,)
                                  .Ret<ffi::AnyBuffer>()       // y (T, B, D*O)
                                  .Ret<ffi::AnyBuffer>()       // h_n
                                  .Ret<ffi::AnyBuffer>()       // c_n
                                  .Ret<ffi::AnyBuffer>()       // reserve space (u8)
                                  JAXRNN_CONFIG_ATTRS
                                  .Attr<int32_t>("training")
                                  .Attr<int32_t>("has_lengths"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnCudnnBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<ffi::ScratchAllocator>()
                                  .Arg<ffi::AnyBuffer>()       // x
                                  .Arg<ffi::AnyBuffer>()       // h0
                                  .Arg<ffi::AnyBuffer>()       // c0
                                  .Arg<ffi::AnyBuffer>()       // weight space
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths
                                  .Arg<ffi::AnyBuffer>()       // y
                                  .Arg<ffi::AnyBuffer>()       // dy
                                  .Arg<ffi::AnyBuffer>()       // dh_n
                                  .Arg<ffi::AnyBuffer>()       // dc_n
                                  .Arg<ffi::AnyBuffer>()       // reserve space (aliased)
                                  .Ret<ffi::AnyBuffer>()       // dx
                                  .Ret<ffi::AnyBuffer>()       // dh0
                                  .Ret<ffi::AnyBuffer>()       // dc0
                                  .Ret<ffi::AnyBuffer>()       // dweight space
                                  .Ret<ffi::AnyBuffer>()       // reserve space
                                  JAXRNN_CONFIG_ATTRS
                                  .Attr<int32_t>("has_lengths"));

// ---- ctypes helpers (trace time; return < 0 and set the last error on failure) ----

JAXRNN_EXPORT const char *jaxrnn_cudnn_last_error() { return g_last_error.c_str(); }

JAXRNN_EXPORT int64_t jaxrnn_cudnn_version() { return static_cast<int64_t>(cudnnGetVersion()); }

JAXRNN_EXPORT int64_t jaxrnn_cudnn_header_version() { return CUDNN_VERSION; }

JAXRNN_EXPORT int64_t jaxrnn_cudnn_device_count() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    set_error(std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " +
              cudaGetErrorString(e));
    return -1;
  }
  return n;
}

// out[0..4] = resolved algo, workspace bytes, reserve bytes (training), weight space bytes.
// A persistent algorithm that cuDNN reports NOT_SUPPORTED for this shape falls back to the
// standard one, and the algo it returns is the one the handlers must be given.
JAXRNN_EXPORT int64_t jaxrnn_cudnn_plan(int32_t mode, int32_t bidir, int32_t layers,
                                        int32_t input, int32_t hidden, int32_t proj,
                                        int32_t algo, int32_t math, int32_t dtype, int32_t t,
                                        int32_t b, int32_t training, int64_t *out) {
  Config c{mode, bidir, layers, input, hidden, proj, algo, math, dtype};
  try {
    Device &dev = current_device();
    std::lock_guard<std::mutex> lock(dev.mu);
    for (;;) {
      try {
        RnnDesc &r = rnn_desc(dev, c);
        Data d(c, t, b, std::vector<int32_t>(b, t));
        size_t ws = 0, rs = 0;
        auto fwd = training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
        cudnnStatus_t s = cudnnGetRNNTempSpaceSizes(dev.handle, r.rnn, fwd, d.x, &ws, &rs);
        if (s == CUDNN_STATUS_NOT_SUPPORTED && c.algo != CUDNN_RNN_ALGO_STANDARD) {
          c.algo = CUDNN_RNN_ALGO_STANDARD;
          continue;
        }
        check(s, "cudnnGetRNNTempSpaceSizes");
        out[0] = c.algo;
        out[1] = static_cast<int64_t>(ws);
        out[2] = static_cast<int64_t>(rs);
        out[3] = static_cast<int64_t>(r.weight_bytes);
        return 0;
      } catch (const Failure &f) {
        // cudnnSetRNNDescriptor_v8 may refuse a persistent algorithm itself.
        if (c.algo != CUDNN_RNN_ALGO_STANDARD &&
            f.message.find("NOT_SUPPORTED") != std::string::npos) {
          dev.cache.erase(c.key());
          c.algo = CUDNN_RNN_ALGO_STANDARD;
          continue;
        }
        throw;
      }
    }
  } catch (const Failure &f) {
    set_error(f.message + " [" + describe(c) + "]");
    return -1;
  }
}

// cuDNN's own weight layout: for every pseudo-layer (layer * D + direction) and linear layer
// id (LSTM 0-3 input gates i,f,g,o, 4-7 recurrent, 8 projection; GRU 0-2 / 3-5 r,z,n; RNN
// 0 / 1), out gets (matrix offset, matrix elements, bias offset, bias elements) in
// elements from the start of the weight space, -1 offsets where there is none. `n_lin` ids
// per pseudo-layer; out has layers * D * n_lin * 4 entries.
JAXRNN_EXPORT int64_t jaxrnn_cudnn_weight_params(int32_t mode, int32_t bidir, int32_t layers,
                                                 int32_t input, int32_t hidden, int32_t proj,
                                                 int32_t dtype, int32_t n_lin, int64_t *out) {
  Config c{mode, bidir, layers, input, hidden, proj, CUDNN_RNN_ALGO_STANDARD, 0, dtype};
  void *space = nullptr;
  cudnnTensorDescriptor_t md = nullptr, bd = nullptr;
  int64_t rc = 0;
  try {
    Device &dev = current_device();
    std::lock_guard<std::mutex> lock(dev.mu);
    RnnDesc &r = rnn_desc(dev, c);
    CUDA(cudaMalloc(&space, r.weight_bytes));
    CUDNN(cudnnCreateTensorDescriptor(&md));
    CUDNN(cudnnCreateTensorDescriptor(&bd));
    auto count = [](cudnnTensorDescriptor_t desc, void *addr) -> int64_t {
      if (addr == nullptr) return 0;
      cudnnDataType_t dt;
      int nd = 0, dims[8] = {0}, strides[8] = {0};
      CUDNN(cudnnGetTensorNdDescriptor(desc, 8, &dt, &nd, dims, strides));
      int64_t n = 1;
      for (int i = 0; i < nd; ++i) n *= dims[i];
      return n;
    };
    int64_t k = 0;
    for (int32_t pl = 0; pl < layers * c.dirs(); ++pl) {
      for (int32_t id = 0; id < n_lin; ++id, k += 4) {
        void *ma = nullptr, *ba = nullptr;
        CUDNN(cudnnGetRNNWeightParams(dev.handle, r.rnn, pl, r.weight_bytes, space, id, md, &ma,
                                      bd, &ba));
        auto off = [&](void *a) -> int64_t {
          return a ? static_cast<int64_t>((static_cast<char *>(a) - static_cast<char *>(space)) /
                                          static_cast<int64_t>(c.elem()))
                   : -1;
        };
        out[k] = off(ma);
        out[k + 1] = count(md, ma);
        out[k + 2] = off(ba);
        out[k + 3] = count(bd, ba);
      }
    }
  } catch (const Failure &f) {
    set_error(f.message + " [" + describe(c) + "]");
    rc = -1;
  }
  if (md) cudnnDestroyTensorDescriptor(md);
  if (bd) cudnnDestroyTensorDescriptor(bd);
  if (space) cudaFree(space);
  return rc;
}
