#include "graph/node_definitions.h"

#include <algorithm>
#include <set>

#include "graph/prompt_text.h"
#include "graph/workflow.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

// Core widget constructors of the frontend (src/scripts/widgets.ts) plus the extension widgets
// that core ComfyUI nodes use. Any other type is a socket.
const std::set<std::string>& WidgetTypes() {
  static const std::set<std::string> kTypes = {
      "INT",      "FLOAT",       "BOOLEAN",      "STRING",       "MARKDOWN",
      "COMBO",    "IMAGEUPLOAD", "COLOR",        "IMAGECOMPARE", "BOUNDING_BOX",
      "CHART",    "GALLERIA",    "PAINTER",      "TEXTAREA",     "CURVE",
      "AUDIO_UI", "AUDIOUPLOAD", "AUDIO_RECORD", "WEBCAM",       "COMFY_DYNAMICCOMBO_V3"};
  return kTypes;
}

bool Truthy(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) return !v.get<std::string>().empty();
  if (v.is_number()) return v.get<double>() != 0.0;
  return !v.is_null();
}

bool FlagSet(const json& options, const char* key) {
  auto it = options.find(key);
  return it != options.end() && it->is_boolean() && it->get<bool>();
}

Status DefError(const std::string& class_type, std::string message, const std::string& input = {}) {
  ErrorLocation where;
  where.class_type = class_type;
  where.input_name = input;
  where.json_pointer = "/" + class_type;
  return Status(ErrorCode::kParse, "malformed node definition: " + std::move(message), where);
}

Result<InputSpec> BuildInput(const std::string& class_type, const std::string& name,
                             const json& spec, bool required) {
  InputSpec input;
  input.name = name;
  input.required = required;
  if (!spec.is_array() || spec.empty()) {
    return DefError(class_type, "input spec must be a non-empty array [type, options]", name);
  }
  if (spec.size() > 1 && spec[1].is_object()) input.options = spec[1];
  const json& type = spec[0];
  if (type.is_array()) {
    input.type = "COMBO";
    input.combo_values = type;
  } else if (type.is_string()) {
    input.type = type.get<std::string>();
    if (input.type == "COMBO" || input.type == "COMFY_DYNAMICCOMBO_V3") {
      const json& opts = JsonMember(input.options, "options", JsonEmptyArray());
      if (opts.is_array()) {
        for (const json& o : opts) {
          // Dynamic combos list {key, inputs} objects; the widget value is the key.
          if (o.is_object() && o.contains("key")) {
            input.combo_values.push_back(o["key"]);
          } else {
            input.combo_values.push_back(o);
          }
        }
      }
    }
  } else {
    return DefError(class_type, "input type must be a string or a list of options", name);
  }
  if (input.type == "COMFY_MATCHTYPE_V3") {
    // V3 MatchType: any of the template's allowed types ("IMAGE,MASK", or "*").
    const json& allowed = JsonMember(JsonMember(input.options, "template", JsonEmptyObject()),
                                     "allowed_types", JsonNull());
    input.type = allowed.is_string() && !allowed.get<std::string>().empty()
                     ? allowed.get<std::string>()
                     : "*";
  }
  input.force_input = FlagSet(input.options, "forceInput");
  std::string widget_type = input.type;
  if (input.options.contains("widgetType") && input.options["widgetType"].is_string()) {
    widget_type = input.options["widgetType"].get<std::string>();
  }
  input.is_widget = !input.force_input && IsWidgetType(widget_type);
  return input;
}

json DefaultFor(const InputSpec& input, const std::string& type) {
  const json& def = JsonMember(input.options, "default", JsonNull());
  if (type == "INT" || type == "FLOAT") return def.is_null() ? json(0) : def;
  if (type == "STRING" || type == "MARKDOWN" || type == "TEXTAREA") {
    return def.is_null() ? json("") : def;
  }
  if (type == "BOOLEAN") return def.is_null() ? json(false) : def;
  if (type == "COMBO" || type == "COMFY_DYNAMICCOMBO_V3") {
    // The frontend uses `default || options[0]`.
    if (Truthy(def)) return def;
    if (!input.combo_values.empty()) return input.combo_values[0];
    return def;
  }
  return def;
}

WidgetSpec BuildWidget(const InputSpec& input) {
  WidgetSpec w;
  w.name = input.name;
  w.type = input.type;
  if (input.options.contains("widgetType") && input.options["widgetType"].is_string()) {
    w.type = input.options["widgetType"].get<std::string>();
  }
  if (w.type == "COMFY_DYNAMICCOMBO_V3") w.type = "COMBO";
  w.options = input.options;
  w.default_value = DefaultFor(input, w.type);
  w.dynamic_prompts = w.type == "STRING" && FlagSet(input.options, "dynamicPrompts");
  const json& control = JsonMember(input.options, "control_after_generate", JsonNull());
  if (w.type == "INT") {
    const bool has_control =
        control.is_null() ? (input.name == "seed" || input.name == "noise_seed") : Truthy(control);
    w.control_slots = has_control ? 1 : 0;
  } else if (w.type == "FLOAT") {
    w.control_slots = Truthy(control) ? 1 : 0;
  } else if (w.type == "COMBO") {
    w.control_slots = Truthy(control) ? 2 : 0;
  }
  return w;
}

// A widget and, for a V3 DynamicCombo, the widgets of each option (nested combos included).
Result<WidgetSpec> BuildWidgetTree(const std::string& class_type, const InputSpec& input,
                                   int depth) {
  WidgetSpec w = BuildWidget(input);
  if (input.type != "COMFY_DYNAMICCOMBO_V3") return w;
  if (depth > 16) return DefError(class_type, "dynamic combos nest too deeply", input.name);
  const json& opts = JsonMember(input.options, "options", JsonEmptyArray());
  if (!opts.is_array()) return w;
  for (const json& o : opts) {
    const json& key = JsonMember(o, "key", JsonNull());
    if (!key.is_string()) continue;
    std::vector<WidgetSpec> subs;
    const json& inputs = JsonMember(o, "inputs", JsonEmptyObject());
    for (const char* section : {"required", "optional"}) {
      const json& specs = JsonMember(inputs, section, JsonEmptyObject());
      if (!specs.is_object()) continue;
      for (const auto& [name, spec] : specs.items()) {
        DISCOMFORT_ASSIGN_OR_RETURN(InputSpec sub, BuildInput(class_type, input.name + "." + name,
                                                              spec, section[0] == 'r'));
        if (!sub.is_widget) continue;  // sockets are saved with their dotted names
        DISCOMFORT_ASSIGN_OR_RETURN(WidgetSpec sw, BuildWidgetTree(class_type, sub, depth + 1));
        subs.push_back(std::move(sw));
      }
    }
    w.dynamic_options.emplace_back(key.get<std::string>(), std::move(subs));
  }
  return w;
}

size_t WidgetCount(const WidgetSpec& w) {
  size_t most = 0;
  for (const auto& [key, subs] : w.dynamic_options) {
    size_t n = 0;
    for (const WidgetSpec& s : subs) n += WidgetCount(s);
    most = std::max(most, n);
  }
  return 1 + most;
}

// The media upload button the frontend appends to loaders (uploadImage.ts / uploadAudio.ts).
std::optional<WidgetSpec> UploadWidget(const std::string& class_type,
                                       const std::vector<InputSpec>& inputs) {
  for (const InputSpec& in : inputs) {
    if (!in.required || in.type != "COMBO") continue;
    const bool media =
        FlagSet(in.options, "image_upload") || FlagSet(in.options, "video_upload") ||
        FlagSet(in.options, "animated_image_upload") ||
        ((class_type == "LoadImage" || class_type == "LoadImageMask") && in.name == "image") ||
        (class_type == "LoadVideo" && in.name == "file");
    if (media) {
      WidgetSpec w;
      w.name = "upload";
      w.type = "IMAGEUPLOAD";
      w.default_value = "image";
      w.to_prompt = false;
      return w;
    }
    if (FlagSet(in.options, "audio_upload")) {
      WidgetSpec w;
      w.name = "upload";
      w.type = "AUDIOUPLOAD";
      w.default_value = "";
      w.to_prompt = false;
      return w;
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsWidgetType(const std::string& type) { return WidgetTypes().count(type) > 0; }

const InputSpec* NodeDef::FindInput(const std::string& input_name) const {
  for (const InputSpec& in : inputs) {
    if (in.name == input_name) return &in;
  }
  return nullptr;
}

const WidgetSpec* NodeDef::FindWidget(const std::string& widget_name) const {
  for (const WidgetSpec& w : widgets) {
    if (w.name == widget_name) return &w;
  }
  return nullptr;
}

namespace {
const std::string& EmptyString() {
  static const std::string kEmpty;
  return kEmpty;
}
}  // namespace

const std::string& NodeDef::InputType(const std::string& input_name) const {
  const InputSpec* in = FindInput(input_name);
  return in == nullptr ? EmptyString() : in->type;
}

const std::string& NodeDef::OutputType(int slot) const {
  if (slot < 0 || slot >= static_cast<int>(output_types.size())) return EmptyString();
  return output_types[slot];
}

Result<NodeDef> NodeDefinitions::BuildDef(const std::string& class_type, const json& entry) {
  if (!entry.is_object()) return DefError(class_type, "definition must be an object");
  NodeDef def;
  def.name = class_type;
  const json& display = JsonMember(entry, "display_name", JsonNull());
  def.display_name =
      display.is_string() && !display.get<std::string>().empty() ? display.get<std::string>()
      : entry.value("name", json(class_type)).is_string()        ? entry.value("name", class_type)
                                                                 : class_type;
  const json& input = JsonMember(entry, "input", JsonEmptyObject());
  if (!input.is_object()) return DefError(class_type, "'input' must be an object");
  const json& order = JsonMember(entry, "input_order", JsonEmptyObject());

  // Widget order (nodeDefOrderingUtil): input_order.required, input_order.optional, then the rest
  // in key order, required first.
  std::set<std::string> seen;
  for (const char* section : {"required", "optional"}) {
    const json& specs = JsonMember(input, section, JsonEmptyObject());
    if (!specs.is_object())
      return DefError(class_type, std::string("'") + section + "' must be an object");
    const json& names = order.is_object() ? order.value(section, json::array()) : json::array();
    if (!names.is_array()) continue;
    for (const json& n : names) {
      if (!n.is_string()) continue;
      const std::string name = n.get<std::string>();
      auto spec = specs.find(name);
      if (spec == specs.end() || seen.count(name)) continue;
      DISCOMFORT_ASSIGN_OR_RETURN(InputSpec in,
                                  BuildInput(class_type, name, *spec, section[0] == 'r'));
      seen.insert(name);
      def.inputs.push_back(std::move(in));
    }
  }
  for (const char* section : {"required", "optional"}) {
    const json& specs = JsonMember(input, section, JsonEmptyObject());
    for (const auto& [name, spec] : specs.items()) {
      if (seen.count(name)) continue;
      DISCOMFORT_ASSIGN_OR_RETURN(InputSpec in,
                                  BuildInput(class_type, name, spec, section[0] == 'r'));
      seen.insert(name);
      def.inputs.push_back(std::move(in));
    }
  }
  for (const InputSpec& in : def.inputs) {
    if (!in.is_widget) continue;
    DISCOMFORT_ASSIGN_OR_RETURN(WidgetSpec w, BuildWidgetTree(class_type, in, 0));
    def.widgets.push_back(std::move(w));
  }
  if (auto upload = UploadWidget(class_type, def.inputs)) def.widgets.push_back(*upload);
  for (const WidgetSpec& w : def.widgets) def.max_widgets += WidgetCount(w);
  // migrateWidgetsValues: the slots an old frontend saved, seed-like inputs taking two.
  std::vector<bool> legacy;
  bool any_forced = false;
  for (const InputSpec& in : def.inputs) {
    if (!in.is_widget && !in.force_input) continue;
    any_forced |= in.force_input;
    const json& control = JsonMember(in.options, "control_after_generate", JsonNull());
    const bool seed_like = (in.type == "INT" && (in.name == "seed" || in.name == "noise_seed")) ||
                           (!control.is_null() && control != false);
    legacy.insert(legacy.end(), seed_like ? 2 : 1, in.force_input);
  }
  if (any_forced) def.legacy_slot_is_forced = std::move(legacy);
  def.save_node = IsSaveNodeType(class_type);

  const json& outputs = JsonMember(entry, "output", JsonEmptyArray());
  if (!outputs.is_array()) return DefError(class_type, "'output' must be an array");
  for (const json& o : outputs) {
    // A V3 MatchType output has the type of what is connected: the frontend uses '*'.
    const std::string type = o.is_string() ? o.get<std::string>() : "COMBO";
    def.output_types.push_back(type == "COMFY_MATCHTYPE_V3" ? "*" : type);
  }
  const json& names = JsonMember(entry, "output_name", JsonEmptyArray());
  for (size_t i = 0; i < def.output_types.size(); ++i) {
    def.output_names.push_back(names.is_array() && i < names.size() && names[i].is_string()
                                   ? names[i].get<std::string>()
                                   : def.output_types[i]);
  }
  const json& output_node = entry.value("output_node", json(false));
  def.output_node = output_node.is_boolean() && output_node.get<bool>();
  return def;
}

Result<NodeDefinitions> NodeDefinitions::FromJson(json object_info) {
  if (!object_info.is_object()) {
    return Status(ErrorCode::kParse,
                  "node definitions must be the /object_info object {class_type: definition}");
  }
  NodeDefinitions defs;
  for (const auto& [class_type, entry] : object_info.items()) {
    DISCOMFORT_ASSIGN_OR_RETURN(NodeDef def, BuildDef(class_type, entry));
    defs.defs_.emplace(class_type, std::move(def));
  }
  defs.raw_ = std::move(object_info);
  return defs;
}

Result<NodeDefinitions> NodeDefinitions::LoadFile(const std::string& path) {
  DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadJsonFile(path));
  auto defs = FromJson(std::move(doc));
  if (!defs.ok()) {
    Status st = defs.TakeStatus();
    st.where().workflow = path;
    return st;
  }
  return defs;
}

const NodeDef* NodeDefinitions::Find(const std::string& class_type) const {
  auto it = defs_.find(class_type);
  return it == defs_.end() ? nullptr : &it->second;
}

}  // namespace discomfort::graph
