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
  void add(const std::string& name, T* param, T* grad, const Shape& shape) {
    this->add_to_group(main_, name, param, grad, shape, norms::null());
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    this->add_to_group(main_, name, param, grad, shape, norms::null());
  }
  SoapMuonConfig& config() { return this->template group_config<rules::SoapMuon>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

}  // namespace dualopt
