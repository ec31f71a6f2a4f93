#include "engine/port_types.h"

#include <set>
#include <sstream>

#include <ATen/ATen.h>

namespace discomfort::engine {
namespace {

enum class Verdict { kMatch, kMismatch, kUnknown };

bool IsJsonScalar(const nlohmann::json& j) {
  return j.is_primitive();
}  // null, bool, number, string

Verdict Judge(const std::string& type, const storage::Value& value) {
  // Python objects and recipes cannot be judged here; ComfyUI's nodes will.
  if (value.is_host() || value.is_recipe()) return Verdict::kMatch;
  const nlohmann::json* j = value.is_json() ? &value.json() : nullptr;
  if (type == "INT") return j != nullptr && j->is_number() ? Verdict::kMatch : Verdict::kMismatch;
  if (type == "FLOAT") return j != nullptr && j->is_number() ? Verdict::kMatch : Verdict::kMismatch;
  if (type == "BOOLEAN")
    return j != nullptr && j->is_boolean() ? Verdict::kMatch : Verdict::kMismatch;
  if (type == "STRING")
    return j != nullptr && j->is_string() ? Verdict::kMatch : Verdict::kMismatch;
  if (type == "COMBO") {
    return j != nullptr && (j->is_string() || j->is_number()) ? Verdict::kMatch
                                                              : Verdict::kMismatch;
  }
  if (type == "IMAGE" || type == "MASK")
    return value.is_tensor() ? Verdict::kMatch : Verdict::kMismatch;
  static const std::set<std::string> kObjectTypes = {
      "MODEL",       "CLIP",          "VAE",         "CONDITIONING",
      "LATENT",      "CONTROL_NET",   "CLIP_VISION", "CLIP_VISION_OUTPUT",
      "STYLE_MODEL", "UPSCALE_MODEL", "GLIGEN",      "SIGMAS",
      "NOISE",       "SAMPLER",       "GUIDER",      "AUDIO",
      "VIDEO"};
  if (kObjectTypes.count(type)) {
    return value.is_none() || (j != nullptr && IsJsonScalar(*j)) ? Verdict::kMismatch
                                                                 : Verdict::kMatch;
  }
  return Verdict::kUnknown;  // "*", custom types
}

}  // namespace

std::string DescribeValueType(const storage::Value& value) {
  if (value.is_none()) return "no value";
  if (value.is_tensor()) {
    const at::Tensor& t = value.tensor();
    std::ostringstream out;
    out << "a " << (t.defined() ? c10::toString(t.scalar_type()) : "undefined") << " tensor [";
    if (t.defined()) {
      for (int64_t d = 0; d < t.dim(); ++d) out << (d ? ", " : "") << t.size(d);
    }
    out << "]";
    return out.str();
  }
  if (value.is_json()) {
    const nlohmann::json& j = value.json();
    std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    if (j.is_boolean()) return "BOOLEAN " + text;
    if (j.is_number_integer() || j.is_number_unsigned()) return "INT " + text;
    if (j.is_number()) return "FLOAT " + text;
    if (j.is_string()) return "STRING " + text;
    if (j.is_null()) return "JSON null";
    return std::string(j.is_array() ? "a JSON list " : "a JSON object ") + text;
  }
  return std::string("a ") + storage::ValueKindName(value.kind());
}

Status CheckPortValue(const graph::Port& port, const storage::Value& value) {
  if (port.type.empty() || port.type == "*") return Status::Ok();
  bool mismatch = false;
  size_t start = 0;
  while (start <= port.type.size()) {  // "IMAGE,MASK": any of them
    size_t comma = port.type.find(',', start);
    if (comma == std::string::npos) comma = port.type.size();
    const Verdict v = Judge(port.type.substr(start, comma - start), value);
    if (v != Verdict::kMismatch) return Status::Ok();
    mismatch = true;
    start = comma + 1;
  }
  if (!mismatch) return Status::Ok();
  ErrorLocation where;
  where.node_id = port.node_id;
  where.class_type = graph::kPortClass;
  where.port = port.unique_id;
  std::string feeds;
  if (!port.consumers.empty()) {
    feeds = " (it feeds input '" + port.consumers.front().input_name + "' of node " +
            port.consumers.front().node_id + ")";
  }
  return Status(ErrorCode::kTypeMismatch,
                "INPUT port '" + port.unique_id + "' (node " + port.node_id + ") expects " +
                    port.type + feeds + ", but the context holds " + DescribeValueType(value) +
                    " under '" + port.unique_id + "'",
                where);
}

}  // namespace discomfort::engine
