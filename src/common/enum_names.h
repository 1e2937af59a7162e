#pragma once
// Options whose value is one of a fixed set, held as an enum class instead of a string compared
// in several places. An enum E takes part by specialising EnumNames<E>:
//
//   template <> struct EnumNames<Mode> {
//     static constexpr const char* option = "mode";                       // the option / INI key
//     static constexpr std::pair<Mode, const char*> values[] = {{Mode::finetune, "finetune"}, ...};
//   };
//
// then enum_name(e) gives the value's name and parse_enum<E>(text) reads one; Boost.Program_options
// reads it through the `validate` overload below (found by argument-dependent lookup once the
// enum's namespace has `using starft::validate;`), so `--mode prtrain` and `mode = prtrain` are
// refused with "--mode: unknown value 'prtrain'; choose one of finetune, pretrain".
#include <boost/any.hpp>
#include <boost/program_options/errors.hpp>

#include <string>
#include <type_traits>
#include <vector>

namespace starft {

template <typename E>
struct EnumNames;  // specialise for each option enum (see above)

template <typename E, typename = void>
struct is_named_enum : std::false_type {};
template <typename E>
struct is_named_enum<E, std::void_t<decltype(EnumNames<E>::values)>> : std::true_type {};

// The name of `value` ("pretrain"), as written on the command line, in INI files and in logs.
template <typename E, typename = std::enable_if_t<is_named_enum<E>::value>>
const char* enum_name(E value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == value) return name;
  return "?";
}

// The accepted names, joined with ", " (for help texts and errors).
template <typename E>
std::string enum_choices() {
  std::string list;
  for (const auto& entry : EnumNames<E>::values) list += (list.empty() ? "" : ", ") + std::string(entry.second);
  return list;
}

// Reads a name; throws boost::program_options::error "--OPTION: unknown value 'TEXT'; choose one
// of A, B" for any other text (the option parsers turn it into starft::Error naming the source).
template <typename E>
E parse_enum(const std::string& text) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (text == name) return v;
  throw boost::program_options::error(std::string("--") + EnumNames<E>::option + ": unknown value '" + text +
                                      "'; choose one of " + enum_choices<E>());
}

// Boost.Program_options' hook for reading an option of type E (its own overload takes `long`, so
// this one, taking `int`, is preferred).
template <typename E, typename = std::enable_if_t<is_named_enum<E>::value>>
void validate(boost::any& out, const std::vector<std::string>& values, E*, int) {
  if (values.size() != 1)
    throw boost::program_options::error(std::string("--") + EnumNames<E>::option + ": give exactly one value");
  out = boost::any(parse_enum<E>(values.front()));
}

}  // namespace starft
