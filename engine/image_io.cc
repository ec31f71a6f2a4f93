#include "engine/image_io.h"

#include <spng.h>

#include <cstdlib>
#include <memory>
#include <string_view>

#include <ATen/ATen.h>

namespace discomfort::engine {
namespace {

Status IoError(const std::string& path, const std::string& what) {
  ErrorLocation where;
  where.json_pointer = path;
  return Status(ErrorCode::kIO, what + ": " + path, where);
}

struct SpngDeleter {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};

}  // namespace

bool LooksLikeImage(const at::Tensor& t) {
  if (!t.defined() || !t.is_floating_point()) return false;
  if (t.dim() == 4) {
    const int64_t c = t.size(3);
    return (c == 1 || c == 3 || c == 4) && t.size(1) > 0 && t.size(2) > 0;
  }
  return t.dim() == 3 && t.size(1) > 0 && t.size(2) > 0 && t.size(0) <= 4096;
}

Result<std::vector<std::string>> WriteImagePngs(const at::Tensor& image,
                                                const std::string& path_stem,
                                                storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  if (!LooksLikeImage(image)) {
    return Status(ErrorCode::kTypeMismatch,
                  "expected an IMAGE tensor [B,H,W,C] (C = 1, 3 or 4) or a MASK [B,H,W]");
  }
  at::Tensor t = image.dim() == 3 ? image.unsqueeze(-1) : image;
  // 0..1 float -> 0..255 bytes, the same rounding ComfyUI's SaveImage uses (clip then truncate).
  at::Tensor bytes =
      (t.detach().to(at::kCPU, at::kFloat) * 255.0).clamp(0, 255).to(at::kByte).contiguous();
  const int64_t batch = bytes.size(0), height = bytes.size(1), width = bytes.size(2),
                channels = bytes.size(3);
  const uint8_t color_type = channels == 1   ? SPNG_COLOR_TYPE_GRAYSCALE
                             : channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                             : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
  std::vector<std::string> written;
  for (int64_t b = 0; b < batch; ++b) {
    const std::string path =
        path_stem + (batch == 1 ? std::string() : "_" + std::to_string(b)) + ".png";
    std::unique_ptr<spng_ctx, SpngDeleter> ctx(spng_ctx_new(SPNG_CTX_ENCODER));
    spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1);
    spng_ihdr ihdr = {};
    ihdr.width = static_cast<uint32_t>(width);
    ihdr.height = static_cast<uint32_t>(height);
    ihdr.bit_depth = 8;
    ihdr.color_type = color_type;
    spng_set_ihdr(ctx.get(), &ihdr);
    spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, 4);  // fast: frames are many
    const size_t frame_bytes = static_cast<size_t>(height * width * channels);
    const uint8_t* data = bytes.data_ptr<uint8_t>() + b * frame_bytes;
    int rc = spng_encode_image(ctx.get(), data, frame_bytes, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (rc != 0) return IoError(path, std::string("PNG encode failed (") + spng_strerror(rc) + ")");
    size_t png_size = 0;
    std::unique_ptr<void, decltype(&std::free)> png(spng_get_png_buffer(ctx.get(), &png_size, &rc),
                                                    &std::free);
    if (png == nullptr || rc != 0)
      return IoError(path, std::string("PNG encode failed (") + spng_strerror(rc) + ")");
    // Atomic: a reader (or a re-run of the same point) never sees half a file. Images are not
    // fsynced: a crash loses at most the last frames, which a resumed run writes again.
    Status st = storage::WriteFileAtomically(
        *fs, path, std::string_view(static_cast<const char*>(png.get()), png_size),
        /*sync=*/false);
    if (!st.ok()) {
      // A missing folder is a write failure here, like any other; a full disk stays kNoSpace.
      return Status(st.code() == ErrorCode::kNoSpace ? ErrorCode::kNoSpace : ErrorCode::kIO,
                    "writing " + path + ": " + st.message());
    }
    written.push_back(path);
  }
  return written;
}

Result<at::Tensor> ReadPngAsImage(const std::string& path, storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  auto read = fs->ReadFile(path);
  if (!read.ok()) {
    Status st = read.TakeStatus();
    return Status(st.code() == ErrorCode::kNotFound ? ErrorCode::kNotFound : st.code(),
                  "cannot read image file " + path + ": " + st.message());
  }
  const std::string& encoded = *read;
  std::unique_ptr<spng_ctx, SpngDeleter> ctx(spng_ctx_new(0));
  // Refuse absurd sizes before allocating: 16384^2 is ComfyUI's MAX_RESOLUTION.
  spng_set_image_limits(ctx.get(), 16384, 16384);
  spng_set_chunk_limits(ctx.get(), 64u << 20, 64u << 20);
  spng_set_png_buffer(ctx.get(), encoded.data(), encoded.size());
  spng_ihdr ihdr = {};
  int rc = spng_get_ihdr(ctx.get(), &ihdr);
  if (rc != 0) {
    return Status(ErrorCode::kParse,
                  std::string("not a valid PNG (") + spng_strerror(rc) + "): " + path);
  }
  size_t size = 0;
  rc = spng_decoded_image_size(ctx.get(), SPNG_FMT_RGB8, &size);
  if (rc != 0)
    return Status(ErrorCode::kParse, std::string("PNG: ") + spng_strerror(rc) + ": " + path);
  at::Tensor bytes = at::empty({1, ihdr.height, ihdr.width, 3}, at::kByte);
  rc = spng_decode_image(ctx.get(), bytes.data_ptr<uint8_t>(), size, SPNG_FMT_RGB8,
                         SPNG_DECODE_TRNS);
  if (rc != 0)
    return Status(ErrorCode::kParse, std::string("PNG decode: ") + spng_strerror(rc) + ": " + path);
  return bytes.to(at::kFloat).div_(255.0);
}

}  // namespace discomfort::engine
