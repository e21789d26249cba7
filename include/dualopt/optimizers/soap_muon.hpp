#pragma once
// SOAP-Muon: one-sided SOAP rotation, Newton-Schulz with cubic clean-up, sqrt correction
// and Frobenius grafting, for matrices; the rest goes to the auxiliary AdamW.
#include "../rules/soap.hpp"
#include "aux_adamw.hpp"

namespace dualopt {

template <class T>
class SoapMuon : public WithAuxAdamW<T> {
 public:
  explicit SoapMuon(SoapMuonConfig config = {}, AdamConfig aux = aux_adamw_defaults()) {
    main_ = this->template add_group<rules::SoapMuon>(config);
    this->make_aux(aux);
  }
  std::string kind() const override { return "soap_muon"; }
  // A tensor of rank > 2 is flattened to [dim0, rest] unless `layout` says Stacked (tensor.hpp).
  void add(const std::string& name, T* param, T* grad, const Shape& shape, MatrixLayout layout = MatrixLayout::Flatten) {
    this->add_to_group(main_, name, param, grad, with_layout(shape, layout), norms::null());
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape,
           MatrixLayout layout = MatrixLayout::Flatten) {
    this->check_lengths(name, param, grad, shape);
    this->add_to_group(main_, name, param.data, grad.data, with_layout(shape, layout), norms::null());
  }
  SoapMuonConfig& config() { return this->template group_config<rules::SoapMuon>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

}  // namespace dualopt
