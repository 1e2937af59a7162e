#pragma once
// Which columns of a zero-shot head score which class of an evaluation store.
//
// A head is built for a list of classes (names, optionally ids such as WordNet ids). A store is
// scored against a head in one of four ways, chosen automatically unless a class map is given:
//   identity   the store's classes are the head's classes, in the same order;
//   class id   every class id of the store is a class id of the head (ImageNet-R / -A: 200 of
//              ImageNet's 1000 WordNet ids): the argmax is restricted to those columns;
//   class name the same by name when either side has no ids (a name that is ambiguous in the
//              head is an error);
//   class map  a mapping file gives each store class one or more head classes (ObjectNet: 113
//              classes onto ImageNet's); the logit of a store class is the maximum over its
//              columns.
// In every case a sample's prediction is the store class with the largest (mapped) logit.
//
// File formats (datasets/classnames/README.md):
//   class list  data/class_list.h (the reader every command uses);
//   class map   one store class per line: `store_class<TAB>head_class[<TAB>head_class...]`, each
//               class given by its id or its name; blank lines and lines whose first non-blank
//               character is '#' are skipped.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/class_list.h"

namespace starft::eval {

using data::ClassList;

enum class Matching { identity, class_id, class_name, class_map };
const char* to_string(Matching matching);

struct ClassMapping {
  Matching matching = Matching::identity;
  int64_t head_classes = 0;
  // columns[c]: the head columns of store class c (exactly one unless Matching::class_map).
  std::vector<std::vector<int64_t>> columns;

  int64_t store_classes() const { return static_cast<int64_t>(columns.size()); }
  // [N, store classes] logits from head logits [N, head classes]: the column of each class, or
  // the maximum over its columns.
  torch::Tensor apply(const torch::Tensor& head_logits) const;
};

// Matches a store's classes to a head's automatically (identity, then class id, then class
// name). Throws starft::Error listing the store classes that have no column in the head (or
// whose name is ambiguous there) and what to pass instead; `store_where` names the store.
ClassMapping match_classes(const ClassList& store, const ClassList& head, const std::string& store_where);

// Reads a class-map file and resolves it against the store's and the head's classes (ids first,
// then names). Throws starft::Error before any scoring for a malformed line, a store class that
// is not in the store, a head class that is not in the head, a store class listed twice, or store
// classes with no entry (listed).
ClassMapping read_class_map(const std::string& path, const ClassList& store, const ClassList& head);

}  // namespace starft::eval
