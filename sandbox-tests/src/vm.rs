//! Runs one contract method on nearcore's VM (`near-vm-runner`, wasmtime) with the
//! protocol's wasm config, and maps its errors to the shapes RPC clients expect.

use std::sync::Arc;

use near_parameters::RuntimeConfig;
use near_primitives::errors::{
    CompilationError as ViewCompilationError, FunctionCallError, MethodResolveError,
};
use near_primitives::types::AccountId;
use near_vm_runner::logic::errors::{
    CompilationError as VmCompilationError, FunctionCallError as VmFunctionCallError,
    MethodResolveError as VmMethodResolveError,
};
use near_vm_runner::logic::{VMContext, VMOutcome};
use near_vm_runner::{Contract, ContractCode, MockContractRuntimeCache};

use crate::ext::{NewReceipt, RuntimeExt};
use crate::state::Storage;

/// The VM plus its compiled-contract cache (compiling is the slow part of a call).
#[derive(Clone)]
pub struct Vm {
    config: Arc<RuntimeConfig>,
    cache: MockContractRuntimeCache,
    chain_id: String,
}

/// What a finished call left behind.
pub struct CallOutcome {
    /// Balance, storage usage, gas, logs, return data, abort reason.
    pub outcome: VMOutcome,
    /// Receipts the contract created.
    pub receipts: Vec<NewReceipt>,
    /// Set if the call failed, in the serializable form outcomes carry.
    pub error: Option<FunctionCallError>,
}

struct Code(Arc<ContractCode>);

impl Contract for Code {
    fn hash(&self) -> near_primitives::hash::CryptoHash {
        *self.0.hash()
    }
    fn get_code(&self) -> Option<Arc<ContractCode>> {
        Some(self.0.clone())
    }
}

impl Vm {
    /// A VM using `config` (fees and wasm limits of one protocol version).
    pub fn new(config: Arc<RuntimeConfig>, chain_id: String) -> Self {
        Self {
            config,
            cache: MockContractRuntimeCache::default(),
            chain_id,
        }
    }

    /// The protocol config the VM runs with.
    pub fn config(&self) -> &Arc<RuntimeConfig> {
        &self.config
    }

    /// Runs `method` of `code` against `storage` (changed in place; the caller
    /// decides whether to keep the copy it passed).
    pub fn call(
        &self,
        code: Arc<ContractCode>,
        method: &str,
        context: &VMContext,
        storage: &mut Storage,
        receipt_id: near_primitives::hash::CryptoHash,
    ) -> CallOutcome {
        let wasm_config = self.config.wasm_config.clone();
        let gas_counter = context.make_gas_counter(&wasm_config);
        let prepared = near_vm_runner::prepare(
            &Code(code),
            wasm_config,
            Some(&self.cache),
            gas_counter,
            method,
        );
        let mut ext = RuntimeExt::new(storage, receipt_id, self.chain_id.clone());
        let result = near_vm_runner::run(prepared, &mut ext, context, self.config.fees.clone());
        let (receipts, unsupported) = (std::mem::take(&mut ext.receipts), ext.unsupported);
        match result {
            Ok(outcome) => {
                let error = match (&outcome.aborted, unsupported) {
                    (Some(e), _) => Some(to_view_error(e)),
                    (None, Some(what)) => Some(FunctionCallError::ExecutionError(format!(
                        "{what} is not supported by the local chain"
                    ))),
                    (None, None) => None,
                };
                CallOutcome {
                    outcome,
                    receipts,
                    error,
                }
            }
            Err(e) => {
                let error = FunctionCallError::ExecutionError(format!("VM runner error: {e:?}"));
                let outcome = VMOutcome::nop_outcome(VmFunctionCallError::LinkError {
                    msg: format!("{e:?}"),
                });
                CallOutcome {
                    outcome,
                    receipts: Vec::new(),
                    error: Some(error),
                }
            }
        }
    }
}

/// The error of a missing contract, as nearcore reports it.
pub fn code_does_not_exist(account_id: &AccountId) -> FunctionCallError {
    FunctionCallError::CompilationError(ViewCompilationError::CodeDoesNotExist {
        account_id: account_id.clone(),
    })
}

/// Converts the VM's error into the serializable one nearcore puts in outcomes:
/// method resolution keeps its structure, everything else becomes an
/// `ExecutionError` with the message a wallet shows ("Smart contract panicked: …").
pub fn to_view_error(e: &VmFunctionCallError) -> FunctionCallError {
    match e {
        VmFunctionCallError::MethodResolveError(m) => {
            FunctionCallError::MethodResolveError(match m {
                VmMethodResolveError::MethodEmptyName => MethodResolveError::MethodEmptyName,
                VmMethodResolveError::MethodNotFound => MethodResolveError::MethodNotFound,
                VmMethodResolveError::MethodInvalidSignature => {
                    MethodResolveError::MethodInvalidSignature
                }
            })
        }
        VmFunctionCallError::CompilationError(VmCompilationError::CodeDoesNotExist {
            account_id,
        }) => match account_id.parse::<AccountId>() {
            Ok(id) => code_does_not_exist(&id),
            Err(_) => FunctionCallError::ExecutionError(e.to_string()),
        },
        VmFunctionCallError::CompilationError(c) => {
            FunctionCallError::CompilationError(ViewCompilationError::WasmerCompileError {
                msg: c.to_string(),
            })
        }
        other => FunctionCallError::ExecutionError(other.to_string()),
    }
}
