#include "graph/widget_values.h"

#include <string_view>
#include <utility>

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

// The node being read, and how its errors name it.
struct NodeBeingRead {
  const UiNode& node;
  const std::string& exec_id;
  const std::string& source;

  Status Error(ErrorCode code, std::string message, std::string widget, std::string pointer) const {
    ErrorLocation where;
    where.workflow = source;
    where.node_id = exec_id;
    where.class_type = node.type;
    where.input_name = std::move(widget);
    where.json_pointer = std::move(pointer);
    return Status(code, std::move(message), std::move(where));
  }
};

Status AssignWidget(const NodeBeingRead& reading, const WidgetSpec& spec, const json& v,
                    size_t index, WidgetValue* out) {
  if (v.is_null()) {
    if (spec.IsNumeric()) return Status::Ok();        // null numbers keep their default
    if (spec.type == "COMBO"sv) return Status::Ok();  // a null combo becomes options[0]
    out->value = &v;
    return Status::Ok();
  }
  auto mismatch = [&](const char* expected) {
    const std::string pointer =
        reading.node.json_pointer + "/widgets_values/" + std::to_string(index);
    return reading.Error(ErrorCode::kTypeMismatch,
                         "widget '" + spec.name + "' expects " + expected + ", got " + v.dump() +
                             " (widgets_values does not match the node definition)",
                         spec.name, pointer);
  };
  if (spec.IsNumeric() && !v.is_number())
    return mismatch(spec.type == "INT"sv ? "an integer" : "a number");
  if (spec.type == "BOOLEAN"sv && !v.is_boolean()) return mismatch("a boolean");
  if ((spec.type == "STRING"sv || spec.type == "MARKDOWN"sv || spec.type == "TEXTAREA"sv) &&
      (v.is_object() || v.is_array())) {
    return mismatch("a string");
  }
  if (spec.type == "COMBO"sv && v.is_object()) return mismatch("one of the combo's options");
  out->value = &v;
  return Status::Ok();
}

// Indexes into widgets_values that belong to widgets when a frontend before 1.16 saved a slot
// for forceInput inputs too (the length says so): those slots are skipped
// (migrateWidgetsValues).
std::vector<size_t> LegacySlotIndexes(const NodeDef& def) {
  std::vector<size_t> kept;
  for (size_t i = 0; i < def.legacy_slot_is_forced.size(); ++i) {
    if (!def.legacy_slot_is_forced[i]) kept.push_back(i);
  }
  return kept;
}

}  // namespace

json WrapForPrompt(const json& v, bool curve) {
  if (!v.is_array()) return v;
  json wrapped(json::value_t::object);
  // executionUtil.ts: curve widgets tell the backend the list's type.
  if (curve) wrapped.get_ref<json::object_t&>().emplace("__type__", "CURVE");
  wrapped.get_ref<json::object_t&>().emplace("__value__", v);
  return wrapped;
}

bool IsControlValue(const json& v) {
  if (v.is_boolean()) return true;  // 2023 saves: the old "randomize" checkbox
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  return s == "fixed"sv || s == "increment"sv || s == "decrement"sv || s == "randomize"sv ||
         s == "increment-wrap"sv;
}

Result<std::vector<WidgetValue>> ReadWidgetValues(const UiNode& node, const NodeDef& def,
                                                  const std::string& exec_id,
                                                  const std::string& source) {
  const NodeBeingRead reading{node, exec_id, source};
  // Never grows past max_widgets: `value` may point at `owned` of an element.
  std::vector<WidgetValue> values;
  values.reserve(def.max_widgets);
  const json& wv = *node.widgets_values;
  const json& named = *node.widgets_values_named;
  if (!wv.is_object() && !wv.is_array() && !wv.is_null()) {
    return reading.Error(ErrorCode::kParse, "widgets_values must be an array or an object", {},
                         node.json_pointer + "/widgets_values");
  }
  // Positions in widgets_values: 0..size-1, or the legacy subset (no vector for the former).
  const bool legacy = wv.is_array() && def.legacy_slot_is_forced.size() == wv.size();
  std::vector<size_t> legacy_slots;
  if (legacy) legacy_slots = LegacySlotIndexes(def);
  const size_t slot_count = !wv.is_array() ? 0 : legacy ? legacy_slots.size() : wv.size();
  auto slot = [&](size_t k) { return legacy ? legacy_slots[k] : k; };
  size_t i = 0;  // next slot
  // Widgets in creation order; a DynamicCombo's chosen option inserts its widgets right after
  // it, and they take the next positional values.
  auto walk = [&](const std::vector<WidgetSpec>& specs, auto& self) -> Status {
    for (const WidgetSpec& w : specs) {
      values.push_back({&w, &w.default_value});
      const size_t k = values.size() - 1;
      // widgets_values_named, when saved, names the value; the position is still consumed.
      const json* by_name = nullptr;
      if (named.is_object()) {
        if (auto it = named.find(w.name); it != named.end()) by_name = &*it;
      }
      if (i < slot_count) {
        const size_t at = slot(i++);
        if (by_name == nullptr) {
          DISCOMFORT_RETURN_IF_ERROR(AssignWidget(reading, w, wv[at], at, &values[k]));
        }
        if (w.control_slots > 0 && i < slot_count && IsControlValue(wv[slot(i)])) {
          ++i;
          if (w.control_slots > 1 && i < slot_count && wv[slot(i)].is_string()) ++i;
        }
      } else if (wv.is_object() && by_name == nullptr) {
        if (auto it = wv.find(w.name); it != wv.end()) {
          DISCOMFORT_RETURN_IF_ERROR(AssignWidget(reading, w, *it, k, &values[k]));
        }
      }
      if (by_name != nullptr) {
        DISCOMFORT_RETURN_IF_ERROR(AssignWidget(reading, w, *by_name, k, &values[k]));
      }
      if (w.dynamic_options.empty()) continue;
      const json* chosen = values[k].value;
      for (const auto& [key, subs] : w.dynamic_options) {
        if (chosen->is_string() && chosen->get_ref<const std::string&>() == key) {
          DISCOMFORT_RETURN_IF_ERROR(self(subs, self));
          break;
        }
      }
    }
    return Status::Ok();
  };
  DISCOMFORT_RETURN_IF_ERROR(walk(def.widgets, walk));
  const bool sampler = def.name == "KSampler"sv || def.name == "KSamplerAdvanced"sv;
  for (WidgetValue& wv_k : values) {
    const WidgetSpec& w = *wv_k.spec;
    if (w.type == "COMBO"sv && wv_k.value->is_null()) {
      const InputSpec* in = def.FindInput(w.name);
      if (in != nullptr && !in->combo_values.empty()) wv_k.value = &in->combo_values[0];
    }
    // app.ts load fix-up for samplers saved as "sample_<name>".
    if (sampler && w.name == "sampler_name"sv && wv_k.value->is_string() &&
        wv_k.value->get_ref<const std::string&>().rfind("sample_", 0) == 0) {
      wv_k.owned = wv_k.value->get_ref<const std::string&>().substr(7);
      wv_k.value = &wv_k.owned;
    }
  }
  return values;
}

void ApplyPrimitivePushes(const UiGraph& graph, const UiNode& node,
                          std::vector<WidgetValue>* values) {
  for (const UiInput& input : node.inputs) {
    if (!input.link) continue;
    const UiLink* link = graph.FindLink(*input.link);
    if (link == nullptr) continue;  // reported when the input is resolved
    const UiNode* origin = graph.FindNode(link->origin_id);
    if (origin == nullptr || origin->type != kPrimitiveNodeType) continue;
    if (!origin->widgets_values->is_array() || origin->widgets_values->empty()) continue;
    const json& value = (*origin->widgets_values)[0];
    if (value.is_null()) continue;
    const std::string& widget = input.widget_name.empty() ? input.name : input.widget_name;
    const json& replace =
        JsonMember(*origin->properties, "Run widget replace on values", JsonNull());
    for (WidgetValue& w : *values) {
      if (w.spec->name != widget) continue;
      w.value = &value;
      w.replace_text = replace.is_boolean() && replace.get<bool>() && value.is_string();
    }
  }
}

}  // namespace discomfort::graph
