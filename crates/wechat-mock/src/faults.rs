//! Injected failures: latency, arbitrary errcodes, hanging requests and dropped connections, so a
//! client's timeouts, retries and error mapping can be tested.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A WeChat API the simulator answers (the names are those of the stats JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    Jscode2session,
    Token,
    StableToken,
    Checksession,
    Resetusersessionkey,
    Getuserphonenumber,
}

impl Api {
    /// Every API, in a fixed order.
    pub const ALL: [Api; 6] = [
        Api::Jscode2session,
        Api::Token,
        Api::StableToken,
        Api::Checksession,
        Api::Resetusersessionkey,
        Api::Getuserphonenumber,
    ];

    /// The name used in stats and fault targets.
    pub fn name(self) -> &'static str {
        match self {
            Api::Jscode2session => "jscode2session",
            Api::Token => "token",
            Api::StableToken => "stable_token",
            Api::Checksession => "checksession",
            Api::Resetusersessionkey => "resetusersessionkey",
            Api::Getuserphonenumber => "getuserphonenumber",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Which calls a [`Fault`] applies to: one API, or `"*"` for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    Jscode2session,
    Token,
    StableToken,
    Checksession,
    Resetusersessionkey,
    Getuserphonenumber,
    #[serde(rename = "*")]
    All,
}

impl FaultTarget {
    pub fn matches(self, api: Api) -> bool {
        match self {
            FaultTarget::All => true,
            FaultTarget::Jscode2session => api == Api::Jscode2session,
            FaultTarget::Token => api == Api::Token,
            FaultTarget::StableToken => api == Api::StableToken,
            FaultTarget::Checksession => api == Api::Checksession,
            FaultTarget::Resetusersessionkey => api == Api::Resetusersessionkey,
            FaultTarget::Getuserphonenumber => api == Api::Getuserphonenumber,
        }
    }
}

impl From<Api> for FaultTarget {
    fn from(api: Api) -> Self {
        match api {
            Api::Jscode2session => FaultTarget::Jscode2session,
            Api::Token => FaultTarget::Token,
            Api::StableToken => FaultTarget::StableToken,
            Api::Checksession => FaultTarget::Checksession,
            Api::Resetusersessionkey => FaultTarget::Resetusersessionkey,
            Api::Getuserphonenumber => FaultTarget::Getuserphonenumber,
        }
    }
}

/// A failure injected into the matching calls, before their normal processing.
///
/// A call first waits `latency`, then hangs (`hang`), drops the connection (`close`) or answers
/// `errcode`, in that order of precedence; with none of these it is processed normally after the
/// delay. Matching faults apply in the order they were added until one of them ends the call; each
/// fault that applies uses up one of its `times` (`None` = until cleared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub api: FaultTarget,
    pub latency: Option<Duration>,
    pub errcode: Option<i64>,
    pub times: Option<u32>,
    pub hang: bool,
    pub close: bool,
}

impl Fault {
    /// A fault that does nothing yet; add effects with the builder methods.
    pub fn on(api: impl Into<FaultTarget>) -> Self {
        Self {
            api: api.into(),
            latency: None,
            errcode: None,
            times: None,
            hang: false,
            close: false,
        }
    }

    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    pub fn errcode(mut self, errcode: i64) -> Self {
        self.errcode = Some(errcode);
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    pub fn hang(mut self) -> Self {
        self.hang = true;
        self
    }

    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }
}

/// What the injected faults make of one call.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub latency: Duration,
    pub ending: Option<Ending>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Hang,
    Close,
    Errcode(i64),
}

/// Picks the faults for a call to `api`, using up their `times`.
pub(crate) fn plan(faults: &mut Vec<Fault>, api: Api) -> FaultPlan {
    let mut plan = FaultPlan::default();
    let mut index = 0;
    while index < faults.len() {
        let fault = &mut faults[index];
        if !fault.api.matches(api) || fault.times == Some(0) {
            index += 1;
            continue;
        }
        plan.latency = plan
            .latency
            .saturating_add(fault.latency.unwrap_or_default());
        plan.ending = if fault.hang {
            Some(Ending::Hang)
        } else if fault.close {
            Some(Ending::Close)
        } else {
            fault.errcode.map(Ending::Errcode)
        };
        if let Some(times) = &mut fault.times {
            *times -= 1;
        }
        if fault.times == Some(0) {
            faults.remove(index);
        } else {
            index += 1;
        }
        if plan.ending.is_some() {
            break;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_match_serde_names() {
        for api in Api::ALL {
            assert_eq!(serde_json::to_value(api).unwrap(), api.name());
            assert_eq!(Api::ALL[api.index()], api);
        }
        let all: FaultTarget = serde_json::from_str("\"*\"").unwrap();
        assert_eq!(all, FaultTarget::All);
    }

    #[test]
    fn faults_apply_in_order_and_are_used_up() {
        let mut faults = vec![
            Fault::on(Api::Token)
                .latency(Duration::from_millis(5))
                .times(1),
            Fault::on(FaultTarget::All).errcode(-1).times(2),
            Fault::on(Api::Token).close(),
        ];
        let first = plan(&mut faults, Api::Token);
        assert_eq!(first.latency, Duration::from_millis(5));
        assert_eq!(first.ending, Some(Ending::Errcode(-1)));
        assert_eq!(faults.len(), 2);
        assert_eq!(
            plan(&mut faults, Api::Jscode2session).ending,
            Some(Ending::Errcode(-1))
        );
        assert_eq!(faults.len(), 1);
        assert_eq!(plan(&mut faults, Api::Token).ending, Some(Ending::Close));
        assert_eq!(plan(&mut faults, Api::Token).ending, Some(Ending::Close));
        assert_eq!(plan(&mut faults, Api::Checksession), FaultPlan::default());
    }

    #[test]
    fn a_fault_with_zero_times_never_applies() {
        let mut faults = vec![Fault::on(FaultTarget::All).hang().times(0)];
        assert_eq!(plan(&mut faults, Api::Token), FaultPlan::default());
    }
}
