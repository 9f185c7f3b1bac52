//! `--junit FILE`: a JUnit XML report, one test case per job, as CI systems ingest it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{ReportError, Reporter};
use crate::events::{Event, JobStatus};

const TAIL: usize = 50;

pub struct Junit {
    path: PathBuf,
    run_id: String,
    tails: HashMap<String, VecDeque<String>>,
    cases: Vec<TestCase>,
}

impl Junit {
    pub fn new(path: PathBuf) -> Self {
        Junit {
            path,
            run_id: String::new(),
            tails: HashMap::new(),
            cases: Vec::new(),
        }
    }

    fn tail(&mut self, job: &str) -> String {
        self.tails
            .remove(job)
            .map(|t| t.into_iter().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Reporter for Junit {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        match event {
            Event::RunStarted { run_id, .. } => self.run_id = run_id.clone(),
            Event::JobLog { job, lines } => {
                let tail = self.tails.entry(job.clone()).or_default();
                for line in lines.iter().skip(lines.len().saturating_sub(TAIL)) {
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line.text.clone());
                }
            }
            Event::JobFinished {
                job,
                stage,
                status,
                duration,
                message,
                ..
            } => {
                let tail = self.tail(job);
                let case_status = match status {
                    JobStatus::Passed | JobStatus::AllowedFailure => TestCaseStatus::success(),
                    JobStatus::Cancelled => TestCaseStatus::skipped(),
                    other => {
                        let kind = if *other == JobStatus::Error {
                            NonSuccessKind::Error
                        } else {
                            NonSuccessKind::Failure
                        };
                        let mut s = TestCaseStatus::non_success(kind);
                        if let TestCaseStatus::NonSuccess {
                            message: m,
                            description,
                            ..
                        } = &mut s
                        {
                            *m = Some(
                                message
                                    .clone()
                                    .unwrap_or_else(|| other.as_str().into())
                                    .into(),
                            );
                            *description = Some(tail.into());
                        }
                        s
                    }
                };
                let mut case = TestCase::new(job.as_str(), case_status);
                case.set_classname(stage.as_str());
                case.set_time(*duration);
                self.cases.push(case);
            }
            Event::JobSkipped {
                job, stage, reason, ..
            } => {
                let mut s = TestCaseStatus::skipped();
                if let TestCaseStatus::Skipped { message, .. } = &mut s {
                    *message = Some(reason.as_str().into());
                }
                let mut case = TestCase::new(job.as_str(), s);
                case.set_classname(stage.as_str());
                self.cases.push(case);
            }
            Event::RunFinished { duration, .. } => {
                let mut report = Report::new("berth");
                let mut suite = TestSuite::new(format!("pipeline {}", self.run_id));
                suite.add_test_cases(std::mem::take(&mut self.cases));
                suite.set_time(*duration);
                report.add_test_suite(suite);
                let written = report
                    .to_string()
                    .map_err(std::io::Error::other)
                    .and_then(|xml| std::fs::write(&self.path, xml));
                if let Err(source) = written {
                    return Err(ReportError::Junit {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}
